"""The job queue (SQS): one message asks for one video's chunks to be joined.

On AWS, messages trigger the join Lambda (`app.py`, on_sqs_message); under `make run` the
local worker polls the same queue and runs the same handler.
"""
import functools
import json

from chalicelib import aws
from chalicelib.settings import get_settings


class JobQueue:
    def __init__(self, client=None, queue_name: str | None = None):
        self._client = client
        self._queue_name = queue_name

    @property
    def client(self):
        return self._client or aws.sqs()

    @functools.cached_property
    def url(self) -> str:
        name = self._queue_name or get_settings().job_queue_name
        return self.client.get_queue_url(QueueName=name)["QueueUrl"]

    def schedule_join(self, video_id: int, delay_seconds: int = 0, urgent: bool = False) -> None:
        """Ask for a join. An urgent one (someone is waiting to play the video) runs at once;
        any other waits until the recording has paused (see Joiner.run)."""
        self.client.send_message(QueueUrl=self.url, DelaySeconds=min(delay_seconds, 900),
                                 MessageBody=json.dumps({"join": video_id, "urgent": urgent}))


def join_request_of(message_body: str) -> tuple[int, bool]:
    """(video_id, urgent) of a join message."""
    message = json.loads(message_body)
    return int(message["join"]), bool(message.get("urgent", False))
