"""The one place AWS clients are made: lazily, once per process, honouring AWS_ENDPOINT_URL.

Importing this module creates nothing, so moto can start before the first client exists,
and `reset()` lets a test start over with fresh clients.
"""
import functools
import threading

import boto3
from botocore.config import Config

from chalicelib.settings import get_settings


def _config() -> Config:
    # An emulator on 127.0.0.1 cannot serve virtual-hosted bucket names.
    style = "path" if get_settings().endpoint_url else "auto"
    return Config(
        s3={"addressing_style": style},
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 4},
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


def reset() -> None:
    for getter in (s3, dynamodb, sqs):
        getter.cache_clear()
    _per_thread.__dict__.clear()
