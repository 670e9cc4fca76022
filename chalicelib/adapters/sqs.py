"""The join queue on SQS: one message asks for one video's chunks to be joined, or (kind
"rendition") for the MP4 rendition of its compiled object.

On AWS, messages trigger the join Lambda (`app.py`, on_sqs_message); under `make run` the
local worker receives them from the same queue and runs the same handler.
"""
import functools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chalicelib import aws
from chalicelib.ports import (JOIN, REENCODE_PART, REENCODE_STEPS, RENDITION, RENDITION_PIECE,
                              RENDITION_STEPS, JoinRequest)

_SERVICE = "SQS"
_LONGEST_DELAY = 900  # SQS's limit for DelaySeconds
_SENDS_AT_ONCE = 8  # a rendition's steps are queued this many at a time


def message_body(request: JoinRequest) -> str:
    """A join as it always was, `{"join": <id>, "urgent": ...}`; a rendition
    `{"kind": "rendition", "video_id": <id>}`; a step adds the chunk count it is of
    (`"chunks"`), for a piece the piece's index (`"piece"`), and a re-encode's step when
    the join it works for started (`"lease"`)."""
    if request.kind == RENDITION:
        return json.dumps({"kind": RENDITION, "video_id": request.video_id})
    if request.kind in RENDITION_STEPS + REENCODE_STEPS:
        body = {"kind": request.kind, "video_id": request.video_id, "chunks": request.chunks}
        if request.kind in (RENDITION_PIECE, REENCODE_PART):
            body["piece"] = request.piece
        if request.kind in REENCODE_STEPS:
            body["lease"] = request.lease
        return json.dumps(body)
    return json.dumps({"join": request.video_id, "urgent": request.urgent})


def join_request_of(body: str) -> JoinRequest:
    """The request of a message body; ValueError, KeyError or TypeError when it is not one."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise TypeError("a job message is a JSON object")
    kind = message.get("kind", JOIN)
    if kind == RENDITION:
        return JoinRequest(int(message["video_id"]), False, RENDITION)
    if kind in RENDITION_STEPS + REENCODE_STEPS:
        piece = int(message["piece"]) if kind in (RENDITION_PIECE, REENCODE_PART) else None
        lease = float(message["lease"]) if kind in REENCODE_STEPS else None
        return JoinRequest(int(message["video_id"]), False, kind, int(message["chunks"]), piece, lease)
    if kind != JOIN:
        raise ValueError("an unknown kind of job")
    return JoinRequest(int(message["join"]), bool(message.get("urgent", False)))


@dataclass
class SqsDelivery:
    request: JoinRequest
    body: str
    receipt: str
    _queue: "SqsQueue"

    def acknowledge(self) -> None:
        with aws.service_errors(_SERVICE):
            self._queue.client.delete_message(QueueUrl=self._queue.url, ReceiptHandle=self.receipt)


class SqsQueue:
    def __init__(self, client, queue_name: str):
        self.client = client
        self.queue_name = queue_name

    @functools.cached_property
    def url(self) -> str:
        with aws.service_errors(_SERVICE):
            return self.client.get_queue_url(QueueName=self.queue_name)["QueueUrl"]

    def schedule_join(self, video_id: int, delay_seconds: int = 0, urgent: bool = False) -> None:
        self._send(JoinRequest(video_id, urgent), delay_seconds)

    def schedule_rendition(self, video_id: int, delay_seconds: int = 0) -> None:
        self._send(JoinRequest(video_id, False, RENDITION), delay_seconds)

    def schedule_steps(self, requests: list[JoinRequest]) -> None:
        # One SendMessage each, a few at once. (SendMessageBatch would take ten per call,
        # and is authorized by sqs:SendMessage on AWS; moto's IAM checks it as an action
        # of its own, which no policy here grants.)
        with ThreadPoolExecutor(max_workers=_SENDS_AT_ONCE) as pool:
            for sent in [pool.submit(self._send, request) for request in requests]:
                sent.result()

    def _send(self, request: JoinRequest, delay_seconds: int = 0) -> None:
        with aws.service_errors(_SERVICE):
            self.client.send_message(QueueUrl=self.url, DelaySeconds=min(delay_seconds, _LONGEST_DELAY),
                                     MessageBody=message_body(request))

    def receive(self, wait_seconds: int = 0) -> SqsDelivery | None:
        with aws.service_errors(_SERVICE):
            messages = self.client.receive_message(
                QueueUrl=self.url, WaitTimeSeconds=wait_seconds,
                MaxNumberOfMessages=1).get("Messages", [])
        if not messages:
            return None
        message = messages[0]
        return SqsDelivery(join_request_of(message["Body"]), message["Body"],
                           message["ReceiptHandle"], self)

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        with aws.service_errors(_SERVICE):
            self.client.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt_handle,
                                                  VisibilityTimeout=seconds)

    def waiting(self) -> tuple[int, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
        with aws.service_errors(_SERVICE):
            attributes = self.client.get_queue_attributes(QueueUrl=self.url,
                                                          AttributeNames=names)["Attributes"]
        return int(attributes[names[0]]), int(attributes[names[1]])
