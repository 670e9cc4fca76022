"""The local join worker: polls the job queue and hands each message to app.join_videos,
the handler the SQS-triggered Lambda runs on AWS. Its own process, as the join Lambda is
its own function: a join's CPU and I/O stay out of the API's and the emulator's way.

Started by devtools.server with the stage's environment (AWS_ENDPOINT_URL included).
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sqs_event(body: str, receipt: str) -> dict:
    return {"Records": [{"messageId": receipt[:36], "receiptHandle": receipt, "body": body,
                         "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:local"}]}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import app
    from chalice.local import LambdaContext

    from chalicelib import aws
    queue_url = aws.sqs().get_queue_url(QueueName=os.environ["JOB_QUEUE_NAME"])["QueueUrl"]
    while True:
        messages = aws.sqs().receive_message(
            QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=1).get("Messages", [])
        for message in messages:
            context = LambdaContext("join_videos", memory_size=1024, max_runtime_ms=900_000)
            try:
                app.join_videos(sqs_event(message["Body"], message["ReceiptHandle"]), context)
            except Exception as error:  # as on Lambda: the message comes back after its timeout
                print(f"join job failed: {error!r}", file=sys.stderr, flush=True)
                continue
            aws.sqs().delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
