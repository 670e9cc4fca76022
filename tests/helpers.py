"""Small helpers shared by the in-process API tests."""
import json

from chalice.local import LambdaContext

from chalicelib import aws
from devtools.worker import sqs_event


def run_queued_joins(app_module, limit: int = 20) -> int:
    """Hand every queued join message to app.join_videos, as the SQS trigger would."""
    queue_url = aws.sqs().get_queue_url(QueueName=app_module.get_settings().job_queue_name)["QueueUrl"]
    handled = 0
    while handled < limit:
        messages = aws.sqs().receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1,
                                             WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return handled
        message = messages[0]
        context = LambdaContext("join_videos", memory_size=1024, max_runtime_ms=900_000)
        app_module.join_videos(sqs_event(message["Body"], message["ReceiptHandle"]), context)
        aws.sqs().delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        handled += 1
    return handled


def queued_joins(delayed: bool = False) -> int:
    """How many join messages wait on the queue: visible now, or delayed (JOIN_DELAY_SECONDS)."""
    from chalicelib.settings import get_settings
    queue_url = aws.sqs().get_queue_url(QueueName=get_settings().job_queue_name)["QueueUrl"]
    name = "ApproximateNumberOfMessagesDelayed" if delayed else "ApproximateNumberOfMessages"
    attributes = aws.sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=[name])
    return int(attributes["Attributes"][name])


def body(response) -> dict:
    return json.loads(response.body)
