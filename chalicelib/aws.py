"""The one place AWS clients are made: lazily, once per process, honouring AWS_ENDPOINT_URL.

Importing this module creates nothing, so moto can start before the first client exists,
and `reset()` lets a test start over with fresh clients.
"""
import contextlib
import functools
import threading

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import StorageUnavailable
from chalicelib.settings import get_settings


def _config() -> Config:
    # An emulator on 127.0.0.1, or a store on a host of its own, cannot serve virtual-hosted
    # bucket names.
    style = "path" if get_settings().s3_endpoint_url else "auto"
    return Config(
        s3={"addressing_style": style},
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 4},
        # One client serves every thread: a composition's copies (32 at once,
        # chalicelib.adapters.s3), the chunks read ahead and an upload's parts.
        max_pool_connections=64,
    )


@functools.lru_cache(maxsize=None)
def s3():
    return boto3.client("s3", config=_config())


@functools.lru_cache(maxsize=None)
def dynamodb():
    return boto3.client("dynamodb", config=_config())


_per_thread = threading.local()


def videos_table():
    # boto3 resources, unlike clients, must not be shared between threads (chalice local
    # serves each request on its own thread), so each thread gets its own.
    table = getattr(_per_thread, "videos_table", None)
    if table is None:
        table = boto3.resource("dynamodb", config=_config()).Table(get_settings().table_name)
        _per_thread.videos_table = table
    return table


@functools.lru_cache(maxsize=None)
def sqs():
    return boto3.client("sqs", config=_config())


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


@contextlib.contextmanager
def service_errors(service: str):
    """An AWS service that fails (throttling, an outage, a refusal) becomes
    StorageUnavailable: a 503 the client may retry. The message names the service and the
    kind of failure only: an endpoint URL or an object key is no business of a client."""
    try:
        yield
    except ClientError as error:
        raise StorageUnavailable(f"{service} refused the call ({error_code(error) or 'error'}); "
                                 "retry") from error
    except BotoCoreError as error:
        raise StorageUnavailable(f"{service} did not answer ({type(error).__name__}); "
                                 "retry") from error


def reset() -> None:
    for getter in (s3, dynamodb, sqs):
        getter.cache_clear()
    _per_thread.__dict__.clear()
