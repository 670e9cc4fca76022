"""The embedded AWS emulator for local runs and tests: a moto server on a free loopback port,
with the bucket, table and queue a stage's settings name."""
import os
import threading

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from chalicelib.settings import Settings

# moto checks no signature; these only keep botocore from looking for real credentials.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "emulator",
    "AWS_SECRET_ACCESS_KEY": "emulator",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def use_fake_credentials() -> None:
    for name, value in FAKE_CREDENTIALS.items():
        os.environ[name] = value
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


class _QuietRequestHandler(MotoRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per AWS call is noise
        pass


class _AtomicDynamoDB:
    """DynamoDB applies each request to an item atomically; moto's backend takes no lock,
    so two concurrent `ADD counter :1` can both read the same value. Serialising DynamoDB
    requests gives the emulator the atomicity the service relies on."""

    def __init__(self, application):
        self._application = application
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self._lock:
                return list(self._application(environ, start_response))
        return self._application(environ, start_response)


class Emulator:
    """A moto server (S3, DynamoDB, SQS) on 127.0.0.1; `url` is its AWS_ENDPOINT_URL."""

    def __init__(self, port: int = 0):
        application = _AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", port, application, threaded=True,
                                   request_handler=_QuietRequestHandler)
        host, bound_port = self._server.server_address[:2]
        self.url = f"http://{host}:{bound_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="aws-emulator")

    def start(self) -> "Emulator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def provision(settings: Settings, endpoint_url: str | None = None) -> None:
    """Create the stage's bucket, table and queue (what the deployment template creates on AWS)."""
    def client(name):
        return boto3.client(name, endpoint_url=endpoint_url, region_name="us-east-1")

    s3 = client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if settings.bucket_name not in existing:
        s3.create_bucket(Bucket=settings.bucket_name)
    dynamodb = client("dynamodb")
    if settings.table_name not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName=settings.table_name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "video_id", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "video_id", "KeyType": "HASH"}])
    # The visibility timeout outlasts the longest join, as on AWS (the join Lambda's timeout).
    client("sqs").create_queue(QueueName=settings.job_queue_name,
                               Attributes={"VisibilityTimeout": "900"})
