"""Small helpers shared by the in-process API tests."""
import json

from chalicelib import aws
from chalicelib.jobs import JobQueue
from chalicelib.settings import get_settings
from devtools.worker import deliver_next


def run_queued_joins(app_module, limit: int = 20) -> int:
    """Hand every queued join message to app.join_videos, as the SQS trigger would."""
    queue, handled = JobQueue(), 0
    while handled < limit and deliver_next(app_module, queue):
        handled += 1
    return handled


def queued_joins(delayed: bool = False) -> int:
    """How many join messages wait on the queue: visible now, or delayed (JOIN_DELAY_SECONDS)."""
    queue_url = JobQueue().url
    name = "ApproximateNumberOfMessagesDelayed" if delayed else "ApproximateNumberOfMessages"
    attributes = aws.sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=[name])
    return int(attributes["Attributes"][name])


def body(response) -> dict:
    return json.loads(response.body)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(service, chunks, fold_every: int | None = None, joiner=None) -> tuple[int, str]:
    """A new video with the chunks appended; every `fold_every` appends, the joiner folds
    what has arrived, as the waiting join does while a recording goes on."""
    created = service.create()
    video_id = created.video.video_id
    for number, chunk in enumerate(chunks, start=1):
        service.append(video_id, created.upload_token, chunk)
        if fold_every and number % fold_every == 0:
            joiner.segments.fold(joiner.catalog.get(video_id))
    return video_id, created.upload_token


def object_bytes(key: str) -> bytes:
    return aws.s3().get_object(Bucket=get_settings().bucket_name, Key=key)["Body"].read()
