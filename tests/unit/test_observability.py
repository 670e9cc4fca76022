"""What each log line says about the request or job it belongs to (chalicelib.observability),
through the app's handlers over the in-memory backend. The whole
upload, joins and secrets included, over moto: tests/integration/test_observability.py."""
import logging

import pytest

import app as app_module
from chalicelib import observability
from tests.lambda_events import captured_logs, context



def create(client) -> tuple[int, dict]:
    created = client.http.post("/create_video").json_body
    return created["video_id"], {"Authorization": f"Bearer {created['upload_token']}"}


@pytest.mark.parametrize("header", ["X-Correlation-Id", "X-Request-Id", "x-correlation-id"])
def test_a_client_s_correlation_id_is_on_every_line_and_sent_back(client, header):
    video_id, auth = create(client)
    with captured_logs() as lines:
        response = client.http.get(f"/videos/{video_id}", headers={**auth, header: "rec-42:chunk-7"})
    assert response.headers["X-Correlation-Id"] == "rec-42:chunk-7"
    assert lines and all(line["correlation_id"] == "rec-42:chunk-7" for line in lines)
    assert all(line["video_id"] == video_id for line in lines)


@pytest.mark.parametrize("sent", ["has spaces in it", "x" * 129, "", "<script>", "Bearer abc"])
def test_a_correlation_id_that_does_not_look_like_one_is_replaced(client, sent):
    video_id, auth = create(client)
    with captured_logs() as lines:
        response = client.http.get(f"/videos/{video_id}", headers={**auth, "X-Correlation-Id": sent})
    replaced = response.headers["X-Correlation-Id"]
    assert replaced and replaced != sent
    assert [line["correlation_id"] for line in lines] == [replaced] * len(lines)


def test_without_one_it_is_api_gateway_s_request_id():
    assert observability.correlation_id_of({}, {"requestId": "c6af9ac6-7b61"}, "lambda-id") == "c6af9ac6-7b61"
    assert observability.correlation_id_of({}, None, "lambda-id") == "lambda-id"  # chalice local


def test_the_correlation_header_is_readable_by_a_browser_on_another_origin(client):
    video_id, auth = create(client)
    response = client.http.get(f"/videos/{video_id}", headers={**auth, "Origin": "https://recorder.example"})
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert "x-correlation-id" in exposed


def test_one_line_per_request_names_the_route_never_the_url(client):
    video_id, auth = create(client)
    with captured_logs() as lines:
        client.http.get(f"/get_video/{video_id}?token=sekrit-playback-token")
    [line] = [line for line in lines if line["message"] == "request handled"]
    assert (line["method"], line["route"], line["status"], line["video_id"]) == (
        "GET", "/get_video/{video_id}", 403, video_id)  # not its playback token
    assert "sekrit" not in str(lines)


def test_a_warm_function_does_not_carry_one_request_s_video_into_the_next(client):
    video_id, auth = create(client)
    with captured_logs() as lines:
        client.http.get(f"/videos/{video_id}", headers=auth)
        client.http.post("/create_video")
    first, second = lines
    assert first["video_id"] == video_id and "video_id" not in second
    assert first["correlation_id"] != second["correlation_id"]
    assert first["function_request_id"] != second["function_request_id"]  # the Lambda request id


def test_the_event_is_not_logged_even_when_powertools_is_told_to(client, monkeypatch):
    # The event holds the Authorization header, a ?token= and the chunk.
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    video_id, auth = create(client)
    with captured_logs() as lines:
        client.http.get(f"/videos/{video_id}", headers=auth)
    assert auth["Authorization"].split()[1] not in str(lines)
    assert [line["message"] for line in lines] == ["request handled"]


def test_each_line_is_written_once_and_as_json():
    # chalice's own handler on the same logger would print each line again, as plain text
    # without the correlation id.
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
    handlers = logging.getLogger(app_module.app.log.name).handlers
    assert app_module.app.log.name == observability.SERVICE
    assert [type(handler.formatter) for handler in handlers] == [LambdaPowertoolsFormatter]


def test_a_scheduled_run_is_logged_under_its_event_id(services):
    event = {"version": "0", "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": "123456789012", "region": "us-east-1",
             "time": "2026-11-29T07:00:00Z", "resources": [], "detail": {}}
    with captured_logs() as lines:
        app_module.expire_abandoned(event, context("expire_abandoned"))
    assert [line["correlation_id"] for line in lines] == ["cdc73f9d-aea9-11e3-9d5a-835b769c0d9c"]
