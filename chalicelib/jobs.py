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

    def schedule_join(self, video_id: int, delay_seconds: int = 0) -> None:
        self.client.send_message(QueueUrl=self.url, DelaySeconds=min(delay_seconds, 900),
                                 MessageBody=json.dumps({"join": video_id}))

    def receive(self, wait_seconds: int = 1, max_messages: int = 1) -> list[tuple[int, str]]:
        """(video_id, receipt handle) of waiting messages, for the local worker."""
        response = self.client.receive_message(QueueUrl=self.url, WaitTimeSeconds=wait_seconds,
                                               MaxNumberOfMessages=max_messages)
        return [(video_id_of(m["Body"]), m["ReceiptHandle"]) for m in response.get("Messages", [])]

    def delete(self, receipt_handle: str) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)


def video_id_of(message_body: str) -> int:
    return int(json.loads(message_body)["join"])
