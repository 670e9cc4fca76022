"""Events shaped as Lambda hands them to the app's handlers (API Gateway REST proxy, SQS),
and the JSON lines the service logs while handling them."""
import base64
import contextlib
import hashlib
import json
import logging
import uuid

from chalice.local import LambdaContext

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:video-management-api-dev-JoinQueue-1XK2Q9Z"


def gateway_event(method: str, resource: str, path_parameters: dict | None = None,
                  headers: dict | None = None, body: bytes | None = None,
                  query: dict | None = None, request_id: str | None = None) -> dict:
    """An API Gateway REST (proxy integration) event, as the Lambda behind `resource` gets it."""
    headers = headers or {}
    path = resource
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", str(value))
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters or None, "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": method, "stage": "api",
            "path": "/api" + path, "requestId": request_id,
            "extendedRequestId": "Kp4" + request_id[:8] + "=",
            "requestTime": "29/Nov/2026:07:40:00 +0000", "requestTimeEpoch": 1795938000000,
            "protocol": "HTTP/1.1", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "identity": {"sourceIp": "198.51.100.7", "userAgent": "recorder/1.0"},
            "accountId": "123456789012", "apiId": "abc123",
        },
        "body": base64.b64encode(body).decode("ascii") if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def sqs_record(body: str, message_id: str | None = None, receive_count: int = 1) -> dict:
    """One record of an SQS event, as Lambda's poller delivers it."""
    message_id = message_id or str(uuid.uuid4())
    return {
        "messageId": message_id,
        "receiptHandle": "AQEB" + base64.b64encode(message_id.encode()).decode(),
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count),
                       "SentTimestamp": "1795938000000", "SenderId": "AROAEXAMPLE:api",
                       "ApproximateFirstReceiveTimestamp": "1795938000100"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs", "eventSourceARN": QUEUE_ARN, "awsRegion": "us-east-1",
    }


def sqs_event(*records: dict) -> dict:
    return {"Records": list(records)}


def context(function_name: str) -> LambdaContext:
    return LambdaContext(function_name, memory_size=1024, max_runtime_ms=900_000)


def failed_ids(answer: dict) -> list[str]:
    """The messageIds a partial batch response names."""
    return [item["itemIdentifier"] for item in answer["batchItemFailures"]]


@contextlib.contextmanager
def captured_logs():
    """The JSON lines the service's loggers write while inside (the app's logger and the
    `Logger(child=True)` ones below it), formatted by the same powertools formatter as the
    lines Lambda sends to CloudWatch, parsed."""
    from chalicelib import observability
    lines: list[dict] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(self.format(record)))

    handler = Keep()
    handler.setFormatter(observability.logger.registered_formatter)
    target = logging.getLogger(observability.SERVICE)
    target.addHandler(handler)
    try:
        yield lines
    finally:
        target.removeHandler(handler)


def emf_lines(text: str) -> list[dict]:
    """The EMF objects (metrics) among the lines printed to stdout."""
    objects = []
    for line in text.splitlines():
        if line.startswith("{"):
            parsed = json.loads(line)
            if "_aws" in parsed:
                objects.append(parsed)
    return objects


def metric_values(text: str, name: str, **dimensions: str) -> list[float]:
    """The values of metric `name` printed in EMF, in the objects with these dimensions."""
    values = []
    for emf in emf_lines(text):
        if name in emf and all(emf.get(k) == v for k, v in dimensions.items()):
            values += emf[name] if isinstance(emf[name], list) else [emf[name]]
    return values
