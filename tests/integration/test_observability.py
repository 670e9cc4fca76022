"""A whole upload through the app's handlers as Lambda runs them (API Gateway events, the
SQS trigger's events), over moto with the real join: every line logged while handling says
which request or job it belongs to and which video, no line holds a secret, and each
invocation's metrics are printed as it ends. Also the access log API Gateway would write
with the format the template sets (ACCESS_LOG_FORMAT), rendered from the same events."""
import base64
import json
import re

import pytest

import app as app_module
from chalicelib import aws, telemetry
from chalicelib.models import JoinOutcome
from tests.conftest import ROOT, fixture_chunks
from tests.helpers import record
from tests.lambda_events import (
    captured_logs,
    context,
    emf_lines,
    failed_ids,
    gateway_event,
    metric_values,
    sqs_event,
    sqs_record,
)

# The API stage's access log, as the deployment template sets it (AccessLogSetting.Format):
# who called which route, and how it went. It must hold neither the query string (a
# playback token may ride in it) nor a header (Authorization): $context.path is the path
# alone. Rendered below from the events the test sends, which carry both.
ACCESS_LOG_FORMAT = json.loads((ROOT / ".chalice" / "template.json").read_text())[
    "Resources"]["RestAPI"]["Properties"]["AccessLogSetting"]["Format"]


def access_log_line(event: dict, response: dict) -> str:
    """What API Gateway writes for this request with ACCESS_LOG_FORMAT: each $context
    variable filled in from the event (or the response) it would come from."""
    request = event["requestContext"]
    values = {
        "$context.requestId": request["requestId"],
        "$context.extendedRequestId": request["extendedRequestId"],
        "$context.requestTime": request["requestTime"],
        "$context.identity.sourceIp": request["identity"]["sourceIp"],
        "$context.identity.userAgent": request["identity"]["userAgent"],
        "$context.httpMethod": request["httpMethod"],
        "$context.resourcePath": request["resourcePath"],
        "$context.path": request["path"],
        "$context.protocol": request["protocol"],
        "$context.status": str(response["statusCode"]),
        "$context.responseLength": str(len(response.get("body") or "")),
        "$context.responseLatency": "41",
        "$context.integrationLatency": "38",
        "$context.integration.latency": "38",
        "$context.integration.status": "200",
        "$context.error.message": "-",
        "$context.error.messageString": '"-"',
        "$context.xrayTraceId": "1-6749a7f0-2c1e4f5b7d9a0b3c4d5e6f70",
    }
    variables = set(re.findall(r"\$context(?:\.\w+)+", ACCESS_LOG_FORMAT))
    assert variables <= set(values), f"say where {variables - set(values)} comes from"
    return re.sub(r"\$context(?:\.\w+)+", lambda found: values[found.group(0)], ACCESS_LOG_FORMAT)


class Handled:
    """Each invocation of the app as Lambda makes it, with the lines it logged, what it
    printed (the metrics) and the access log line of a request."""

    def __init__(self, capsys):
        self.capsys = capsys
        self.invocations: list[dict] = []

    def request(self, method, resource, video_id=None, headers=None, body=None, query=None) -> dict:
        event = gateway_event(method, resource, {"video_id": str(video_id)} if video_id else None,
                              headers, body, query)
        lambda_context = context("api_handler")
        with captured_logs() as lines:
            response = app_module.app(event, lambda_context)
        self._note(lines, correlation_id=event["requestContext"]["requestId"], video_id=video_id,
                   lambda_context=lambda_context, response=response,
                   access_log=access_log_line(event, response))
        return response

    def join_messages(self, video_id) -> dict:
        """Every join message queued, handed to the join handler as the SQS trigger does, one
        per invocation (batch_size 1); deleted when not reported as failed."""
        sqs, url = aws.sqs(), app_module.services().backend.queue.url
        answers = {}
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1,
                                              AttributeNames=["All"]).get("Messages"):
            [message] = messages
            record_ = sqs_record(message["Body"], message_id=message["MessageId"],
                                 receive_count=int(message["Attributes"]["ApproximateReceiveCount"]))
            lambda_context = context("join_videos")
            with captured_logs() as lines:
                answer = app_module.join_videos(sqs_event(record_), lambda_context)
            self._note(lines, correlation_id=message["MessageId"], video_id=video_id,
                       lambda_context=lambda_context)
            if message["MessageId"] not in failed_ids(answer):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            answers[message["MessageId"]] = answer
        return answers

    def _note(self, lines, **invocation):
        captured = self.capsys.readouterr()
        self.invocations.append({**invocation, "lines": lines, "out": captured.out, "err": captured.err})


@pytest.fixture
def handled(aws, capsys, monkeypatch):
    # Told to log every event (which holds the tokens and the chunk): it must not.
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    app_module.services.cache_clear()
    telemetry.flush()
    capsys.readouterr()
    yield Handled(capsys)
    app_module.services.cache_clear()


def test_a_whole_upload_logs_its_ids_on_every_line_and_no_secret_anywhere(handled):
    created = json.loads(handled.request("POST", "/create_video")["body"])
    video_id, upload, playback = created["video_id"], created["upload_token"], created["playback_token"]
    chunks = fixture_chunks()
    as_the_recorder = {"Authorization": f"Bearer {upload}", "Content-Type": "video/webm"}
    for chunk in chunks:
        response = handled.request("POST", "/append_video/{video_id}", video_id, body=chunk,
                                   headers=as_the_recorder)
        assert response["statusCode"] == 200
    as_a_player = {"query": {"token": playback}}
    assert handled.request("GET", "/get_video/{video_id}", video_id, **as_a_player)["statusCode"] == 202
    assert handled.request("GET", "/get_video/{video_id}", video_id,  # refused: not in a URL
                           query={"token": upload})["statusCode"] == 403
    answers = handled.join_messages(video_id)
    assert answers and all(answer == {"batchItemFailures": []} for answer in answers.values())
    played = handled.request("GET", "/get_video/{video_id}", video_id, **as_a_player)
    assert played["statusCode"] == 302 and "X-Amz-Signature=" in played["headers"]["Location"]
    status = handled.request("GET", "/videos/{video_id}", video_id,
                             headers={"Authorization": f"Bearer {playback}"})
    assert "X-Amz-Signature=" in json.loads(status["body"])["poster_url"]

    secrets = [upload, playback, "X-Amz-Signature", "Signature="]
    for chunk in chunks:  # however a chunk would be written: base64 (the event), hex, repr
        secrets += [base64.b64encode(chunk)[:40].decode(), chunk[:24].hex(), repr(chunk[:24])[2:-1]]
    joined = False
    for invocation in handled.invocations:
        everything = "\n".join([json.dumps(invocation["lines"]), invocation["out"], invocation["err"],
                                invocation.get("access_log", "")])
        assert not [secret for secret in secrets if secret in everything]
        assert invocation["lines"], "each invocation logs at least one line"
        for line in invocation["lines"]:
            assert line["correlation_id"] == invocation["correlation_id"], line
            assert line["function_request_id"] == invocation["lambda_context"].aws_request_id, line
            if invocation["video_id"] is not None:
                assert line["video_id"] == video_id, line
        if "response" in invocation:
            assert invocation["response"]["headers"]["X-Correlation-Id"] == invocation["correlation_id"]
            access = json.loads(invocation["access_log"])
            assert (access["requestId"], access["status"]) == (
                invocation["correlation_id"], str(invocation["response"]["statusCode"]))
        joined |= any(line.get("outcome") == JoinOutcome.JOINED.value for line in invocation["lines"])
    assert joined


def test_each_invocation_prints_what_it_measured_and_nothing_else(handled):
    created = json.loads(handled.request("POST", "/create_video")["body"])
    video_id, upload = created["video_id"], created["upload_token"]
    chunk = fixture_chunks()[0]
    handled.request("POST", "/append_video/{video_id}", video_id, body=chunk,
                    headers={"Authorization": f"Bearer {upload}", "Content-Type": "video/webm"})
    handled.request("GET", "/videos/{video_id}", video_id, headers={"Authorization": f"Bearer {upload}"})
    handled.join_messages(video_id)
    create, append, status, *joins = handled.invocations
    assert emf_lines(create["out"]) == emf_lines(status["out"]) == []  # nothing measured
    assert create["out"] == status["out"] == create["err"] == status["err"] == ""
    assert metric_values(append["out"], "ChunksAppended") == [1.0]
    assert metric_values(append["out"], "ChunkBytesAppended") == [float(len(chunk))]
    join_out = "".join(join["out"] for join in joins)
    assert metric_values(join_out, "JoinSeconds", join_method="remux")  # timed; never asserted
    assert len(metric_values(join_out, "TimeToReadySeconds", join_method="remux")) == 1


def test_time_to_ready_runs_from_the_last_chunk_by_the_join_s_clock(clocked_on_moto, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    services = clocked_on_moto
    video_id, _ = record(services, fixture_chunks())
    services.videos.clock.now += 42  # the join starts 42 s after the last append
    telemetry.flush()
    capsys.readouterr()
    assert services.joiner.run(video_id) is JoinOutcome.JOINED
    telemetry.flush()
    [ready] = [emf for emf in emf_lines(capsys.readouterr().out) if "TimeToReadySeconds" in emf]
    assert ready["TimeToReadySeconds"] == [42.0]  # the test's clock stood still during the join
    assert ready["join_method"] == "remux" and ready["JoinSeconds"][0] > 0
    assert ready["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["join_method", "service"], ["service"]]
