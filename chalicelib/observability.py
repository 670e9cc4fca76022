"""How an invocation is observed: JSON logs that say which request or job a line belongs to,
and the metrics flushed at its end. (X-Ray tracing is Lambda's and API Gateway's own, switched
per stage by `xray` in .chalice/config.json; no SDK records subsegments.)

`install(app)` registers it all as chalice middleware, for every handler (routes, the join
batch, the schedule):
- Every log line is JSON (powertools Logger; `Logger(child=True)` in the other modules logs
  through this one) with the Lambda request id (`function_request_id`), a `correlation_id`
  and, while a video is being handled, its `video_id`. A route's correlation id is the
  client's `X-Correlation-Id` (or `X-Request-Id`) when it sends a plausible one, else API
  Gateway's request id (the `$context.requestId` of its access log); it is sent back as
  `X-Correlation-Id` for the client to quote. A join message's is its SQS messageId
  (`job_scope`), a scheduled run's the event's id. Keys are cleared at each invocation: a
  warm Lambda must not carry the last request's video into the next one's lines.
- Nothing secret is logged: not the event (which holds the Authorization header, a
  `?token=` and the chunk), whatever POWERTOOLS_LOGGER_LOG_EVENT says; not a response
  (which holds presigned URLs).
- Metrics (chalicelib.telemetry) are flushed when the invocation ends, failed or not.
"""
import contextlib
import os
import re
from collections.abc import Mapping

from aws_lambda_powertools import Logger
from chalice import Chalice, ConvertToMiddleware

from chalicelib import telemetry
from chalicelib.errors import InvalidVideoId
from chalicelib.videos import parse_video_id

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or telemetry.DEFAULT_SERVICE
logger = Logger(service=SERVICE)

CORRELATION_HEADER = "X-Correlation-Id"
_INCOMING_CORRELATION_HEADERS = ("x-correlation-id", "x-request-id")
# A client's id is taken only if it looks like an id: it is written into every log line.
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def install(app: Chalice) -> None:
    """Register the middleware on the app; the first registered runs outermost."""
    app.register_middleware(ConvertToMiddleware(
        # log_event=False overrides POWERTOOLS_LOGGER_LOG_EVENT: the event holds the tokens.
        logger.inject_lambda_context(clear_state=True, log_event=False)))
    app.register_middleware(_flush_metrics)
    app.register_middleware(_request_scope, "http")
    app.register_middleware(_scheduled_scope, "scheduled")


def correlation_id_of(headers: Mapping[str, str], request_context: Mapping | None,
                      lambda_request_id: str | None) -> str | None:
    """The client's correlation id if it sent a plausible one, else API Gateway's request id
    (else, under chalice local, which has none, the Lambda request id)."""
    for name in _INCOMING_CORRELATION_HEADERS:
        value = (headers.get(name) or "").strip()
        if _PLAUSIBLE_ID.fullmatch(value):
            return value
    return (request_context or {}).get("requestId") or lambda_request_id


@contextlib.contextmanager
def job_scope(correlation_id: str):
    """Lines logged inside carry this correlation id (and the video, once about_video says
    which); both are gone afterwards, before the next message of the batch."""
    logger.set_correlation_id(correlation_id)
    try:
        yield
    finally:
        logger.remove_keys(["video_id"])
        logger.set_correlation_id(None)


def about_video(video_id: int) -> None:
    """The video being handled: on every line logged from now on in this request or job."""
    logger.append_keys(video_id=video_id)


def _flush_metrics(event, get_response):
    try:
        return get_response(event)
    finally:
        telemetry.flush()


def _request_scope(request, get_response):
    lambda_request_id = getattr(request.lambda_context, "aws_request_id", None)
    correlation_id = correlation_id_of(request.headers, request.context, lambda_request_id)
    logger.set_correlation_id(correlation_id)
    try:
        about_video(parse_video_id((request.uri_params or {}).get("video_id")))
    except InvalidVideoId:
        pass  # no video in this route, or not a valid id (the route answers 400)
    response = get_response(request)
    if correlation_id:
        response.headers[CORRELATION_HEADER] = correlation_id
    # One line per request: the route, never the URL (its query string can hold a token).
    logger.info("request handled", extra={"method": request.method,
                                          "route": (request.context or {}).get("resourcePath"),
                                          "status": response.status_code})
    return response


def _scheduled_scope(event, get_response):
    logger.set_correlation_id(event.event_id)
    return get_response(event)
