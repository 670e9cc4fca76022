"""Small helpers shared by the tests."""
import json

from chalicelib import responses
from devtools.worker import deliver_next


def run_queued_joins(app_module, limit: int = 20) -> int:
    """Hand every queued join message to app.join_videos, as the SQS trigger would."""
    handled = 0
    while handled < limit and deliver_next(app_module):
        handled += 1
    return handled


def queued_joins(queue, delayed: bool = False) -> int:
    """How many join requests wait on the queue: due now, or delayed (JOIN_DELAY_SECONDS)."""
    due, later = queue.waiting()
    return later if delayed else due


def body(response) -> dict:
    return json.loads(response.body)


def status_of(service, video_id: int, token: str | None) -> dict:
    """The status a client gets from GET /videos/<id>."""
    return responses.video_body(service.status(video_id, token))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(services, chunks, fold_every: int | None = None) -> tuple[int, str]:
    """A new video with the chunks appended; every `fold_every` appends, the join job folds
    what has arrived, as the waiting join does while a recording goes on."""
    created = services.videos.create()
    video_id = created.view.video.video_id
    for number, chunk in enumerate(chunks, start=1):
        services.videos.append(video_id, created.upload_token, chunk)
        if fold_every and number % fold_every == 0:
            services.joiner.folder.fold(services.backend.catalog.get(video_id))
    return video_id, created.upload_token


def object_bytes(key: str) -> bytes:
    """An object's bytes on the in-process moto S3."""
    from chalicelib import aws
    from chalicelib.settings import get_settings
    return aws.s3().get_object(Bucket=get_settings().bucket_name, Key=key)["Body"].read()
