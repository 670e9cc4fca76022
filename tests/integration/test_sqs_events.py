"""The join Lambda's SQS handler fed the events Lambda's poller sends, over moto with the real
joins: each message succeeds or fails on its own, and only the failed ones are answered
(`batchItemFailures`), to come back alone; a duplicate is harmless."""
import json

import botocore.exceptions
import pytest

import app as app_module
from chalicelib import aws
from chalicelib.adapters.sqs import message_body
from chalicelib.ports import JoinRequest
from devtools.worker import deliver_next
from tests.conftest import fixture_chunks
from tests.helpers import record
from tests.lambda_events import (
    captured_logs,
    context,
    failed_ids,
    metric_values,
    sqs_event,
    sqs_record,
)


@pytest.fixture
def services(on_moto, monkeypatch):
    """The app's handlers over moto (the join messages the appends queue are left alone:
    each test delivers its own)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setattr(app_module, "services", lambda: on_moto)
    return on_moto


def join_message(video_id: int, urgent: bool = False, **options) -> dict:
    """A record whose body is what the API queues (chalicelib.adapters.sqs)."""
    return sqs_record(message_body(JoinRequest(video_id, urgent)), **options)


def handle(*records: dict) -> dict:
    return app_module.join_videos(sqs_event(*records), context("join_videos"))


def ready(services, video_id: int) -> bool:
    video = services.backend.catalog.get(video_id)
    return video.compiled_chunks == video.chunk_count


class CompiledWrites:
    """S3 writes of a compiled video (not its poster): PutObject or the start of a multipart
    upload, whichever the upload makes."""

    def __init__(self):
        self.keys: list[str] = []
        aws.s3().meta.events.register("before-parameter-build.s3.PutObject", self._seen)
        aws.s3().meta.events.register("before-parameter-build.s3.CreateMultipartUpload", self._seen)

    def _seen(self, params, **_):
        if "/compiled/" in params["Key"] and not params["Key"].endswith(".jpg"):
            self.keys.append(params["Key"])


def test_a_batch_of_two_videos_joins_both(services):
    first, _ = record(services, fixture_chunks())
    second, _ = record(services, fixture_chunks()[:4])
    answer = handle(join_message(first), join_message(second, urgent=True))
    assert answer == {"batchItemFailures": []}
    assert ready(services, first) and ready(services, second)


def test_a_message_delivered_twice_joins_once(services):
    video_id, _ = record(services, fixture_chunks())
    writes = CompiledWrites()
    with captured_logs() as lines:
        twice_in_a_batch = handle(join_message(video_id), join_message(video_id))
        again_later = handle(join_message(video_id, receive_count=2))
    assert twice_in_a_batch == again_later == {"batchItemFailures": []}
    assert ready(services, video_id)
    assert len(writes.keys) == 1, writes.keys
    outcomes = [line["outcome"] for line in lines if line["message"] == "join job"]
    assert outcomes == ["joined", "up to date", "up to date"]


def test_an_unreadable_message_is_answered_as_failed_and_the_rest_of_the_batch_joined(services, capsys):
    video_id, _ = record(services, fixture_chunks())
    good = join_message(video_id)
    unreadable = [sqs_record("not json"), sqs_record(json.dumps({"join": "seven"})),
                  sqs_record(json.dumps({"video": video_id})), sqs_record(json.dumps([video_id]))]
    with captured_logs() as lines:
        answer = handle(unreadable[0], good, *unreadable[1:])
    assert failed_ids(answer) == [message["messageId"] for message in unreadable]
    assert ready(services, video_id)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert [line["correlation_id"] for line in errors] == [m["messageId"] for m in unreadable]
    assert not [line for line in errors if "video_id" in line]  # not the good message's video
    # Counted, since a failed message is no longer a Lambda error.
    assert metric_values(capsys.readouterr().out, "JoinMessageFailures", reason="unreadable") == [1.0] * 4


def test_a_batch_whose_only_message_fails_is_answered_not_raised(services):
    # Raising would fail the whole invocation: a Lambda error for an ordinary retry.
    message = sqs_record("{")
    assert handle(message) == {"batchItemFailures": [{"itemIdentifier": message["messageId"]}]}


def test_a_join_cut_short_by_an_outage_comes_back_alone_and_then_joins(services, capsys):
    healthy, _ = record(services, fixture_chunks())
    unlucky, _ = record(services, fixture_chunks())

    def s3_down_for_unlucky(params, **_):
        if params.get("Key", "").startswith(f"videos/{unlucky}/"):
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    aws.s3().meta.events.register("before-parameter-build.s3.*", s3_down_for_unlucky)
    message = join_message(unlucky)
    answer = handle(message, join_message(healthy))
    assert failed_ids(answer) == [message["messageId"]]
    assert ready(services, healthy) and not ready(services, unlucky)
    assert metric_values(capsys.readouterr().out, "JoinMessageFailures", reason="interrupted") == [1.0]

    aws.s3().meta.events.unregister("before-parameter-build.s3.*", s3_down_for_unlucky)
    # The same message, delivered again after its visibility timeout, goes through.
    assert handle({**message, "attributes": {**message["attributes"], "ApproximateReceiveCount": "2"}}) == {
        "batchItemFailures": []}
    assert ready(services, unlucky)


def test_the_local_worker_leaves_a_failed_message_on_the_queue_and_deletes_a_joined_one(services):
    queue, sqs = services.backend.queue, aws.sqs()
    healthy, _ = record(services, fixture_chunks())
    unlucky, _ = record(services, fixture_chunks())
    sqs.purge_queue(QueueUrl=queue.url)  # the appends' own join messages

    def in_flight() -> int:
        return int(sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])[
            "Attributes"]["ApproximateNumberOfMessagesNotVisible"])

    def s3_down_for_unlucky(params, **_):
        if params.get("Key", "").startswith(f"videos/{unlucky}/"):
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    aws.s3().meta.events.register("before-parameter-build.s3.*", s3_down_for_unlucky)
    sqs.send_message(QueueUrl=queue.url, MessageBody=message_body(JoinRequest(unlucky, False)))
    assert deliver_next(app_module)
    assert in_flight() == 1  # reported as failed, not acknowledged: it comes back

    sqs.send_message(QueueUrl=queue.url, MessageBody=message_body(JoinRequest(healthy, False)))
    assert deliver_next(app_module)
    assert ready(services, healthy)
    assert in_flight() == 1  # this one was acknowledged


def test_an_interrupted_join_comes_back_in_seconds_not_after_the_visibility_timeout(services):
    queue, sqs = services.backend.queue, aws.sqs()
    video_id, _ = record(services, fixture_chunks())
    sqs.purge_queue(QueueUrl=queue.url)
    changes = []
    sqs.meta.events.register("before-parameter-build.sqs.ChangeMessageVisibility",
                             lambda params, **_: changes.append(params["VisibilityTimeout"]))

    def s3_down(params, **_):
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    aws.s3().meta.events.register("before-parameter-build.s3.*", s3_down)
    sqs.send_message(QueueUrl=queue.url, MessageBody=message_body(JoinRequest(video_id, False)))
    (message,) = sqs.receive_message(QueueUrl=queue.url, AttributeNames=["All"])["Messages"]
    lambda_record = sqs_record(message["Body"], message_id=message["MessageId"], receive_count=3)
    lambda_record["receiptHandle"] = message["ReceiptHandle"]  # moto checks it
    assert failed_ids(handle(lambda_record)) == [message["MessageId"]]
    assert changes == [120]  # 30 s, doubled for each delivery before this third one
