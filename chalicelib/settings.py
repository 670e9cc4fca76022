"""The service's configuration: environment variables read once into one object.

Each stage in `.chalice/config.json` sets these; `chalice local`, the Lambda runtime and
the tests all read them the same way. A missing required variable fails at the first call
of `get_settings()`, with its name, instead of deep inside a request.
"""
import functools
import os
import tempfile
from dataclasses import dataclass

# About 4.5 MB of raw chunk is what fits through API Gateway and Lambda: the 6 MB
# synchronous payload limit applies to the base64-encoded body.
DEFAULT_MAX_CHUNK_BYTES = 4_500_000


class ConfigurationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    bucket_name: str
    table_name: str
    job_queue_name: str
    auth_mode: str  # "token": every call but create needs the video's token; "open": none do
    max_chunk_bytes: int
    # A piece PUT to S3 directly (POST /videos/<id>/pieces) may be this large; S3 takes at
    # most 5 GiB in one PUT. Joins stream large chunks, so memory does not bound it; the join
    # function's /tmp does (the remux is written there).
    max_piece_bytes: int
    ffmpeg_binary: str
    presigned_url_seconds: int
    join_delay_seconds: int  # lets a burst of appends share one join
    # A running join renews its lease (a heartbeat) every third of this; a join not heard of
    # for this long (no heartbeat, no renewed request) is presumed lost and asked for again.
    join_stall_seconds: int
    retry_after_seconds: int
    work_dir: str
    allow_reencode: bool  # join complete files that differ by re-encoding them, or refuse
    # Seconds of media one re-encode may take (it runs at about real time: on Lambda, 900 s
    # bound the join); a longer recording fails with that reason. 0: no bound.
    max_reencode_seconds: int
    expire_after_seconds: int  # a recording never joined, with no append for this long, goes
    # Where S3 is when it is not AWS's: the local emulator, or any S3-compatible store
    # (AWS_ENDPOINT_URL_S3 for S3 alone, AWS_ENDPOINT_URL for every service; boto3 reads
    # both itself). None on AWS.
    s3_endpoint_url: str | None
    # How many video ids each instance reserves from the counter item at once (one write
    # per block instead of one per create: a single DynamoDB item sustains about 1,000
    # writes a second). `local` keeps 1: ids count up 1, 2, 3 as the README's session and
    # the clients expect. `dev` and `prod` use 20: a Lambda instance serves one request at a
    # time, so a block of 20 cuts the counter's writes twentyfold and an instance recycled
    # mid-block leaves a gap of at most 19 ids.
    id_block_size: int = 1
    # The MP4 rendition (chalicelib.renditions): a video longer than this many seconds gets
    # none (state too_long; 0: no bound). It is encoded in pieces of about this many seconds
    # (cut at keyframes, at most a third longer), each piece a job of its own: shorter
    # pieces, more of them at once, the rendition sooner; each one costs a job's start and
    # its S3 requests.
    rendition_max_seconds: int = 3600
    rendition_piece_seconds: int = 30
    # `make run` only: how many local worker processes take jobs off the queue (on AWS,
    # each message has an invocation of its own). Two: a rendition's pieces, or a join
    # and a rendition, run at once.
    job_workers: int = 2

    @property
    def tokens_required(self) -> bool:
        return self.auth_mode == "token"


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} must be set")
    return value


def _integer(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {value}")
    return value


def _boolean(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigurationError(f"{name} must be true or false, not {raw!r}")
    return raw in ("true", "1", "yes")


def _auth_mode() -> str:
    mode = os.environ.get("AUTH_MODE", "token").strip() or "token"
    if mode not in ("token", "open"):
        raise ConfigurationError(f"AUTH_MODE must be 'token' or 'open', not {mode!r}")
    return mode


@functools.lru_cache(maxsize=None)
def get_settings() -> Settings:
    return Settings(
        bucket_name=_required("BUCKET_NAME"),
        table_name=_required("TABLE_NAME"),
        job_queue_name=_required("JOB_QUEUE_NAME"),
        auth_mode=_auth_mode(),
        max_chunk_bytes=_integer("MAX_CHUNK_BYTES", DEFAULT_MAX_CHUNK_BYTES, minimum=1),
        max_piece_bytes=_integer("MAX_PIECE_BYTES", 5 * 1024 ** 3, minimum=1),
        ffmpeg_binary=os.environ.get("FFMPEG_BINARY", "").strip() or "ffmpeg",
        presigned_url_seconds=_integer("PRESIGNED_URL_SECONDS", 3600, minimum=1),
        join_delay_seconds=min(_integer("JOIN_DELAY_SECONDS", 2), 900),
        join_stall_seconds=_integer("JOIN_STALL_SECONDS", 60, minimum=3),
        retry_after_seconds=_integer("RETRY_AFTER_SECONDS", 2, minimum=1),
        work_dir=os.environ.get("WORK_DIR", "").strip() or tempfile.gettempdir(),
        allow_reencode=_boolean("ALLOW_REENCODE", True),
        max_reencode_seconds=_integer("MAX_REENCODE_SECONDS", 0),
        expire_after_seconds=_integer("EXPIRE_AFTER_SECONDS", 7 * 24 * 3600, minimum=60),
        s3_endpoint_url=(os.environ.get("AWS_ENDPOINT_URL_S3", "").strip()
                         or os.environ.get("AWS_ENDPOINT_URL", "").strip() or None),
        id_block_size=_integer("ID_BLOCK_SIZE", 1, minimum=1),
        rendition_max_seconds=_integer("RENDITION_MAX_SECONDS", 3600),
        rendition_piece_seconds=_integer("RENDITION_PIECE_SECONDS", 30, minimum=2),
        job_workers=_integer("JOB_WORKERS", 2, minimum=1),
    )
