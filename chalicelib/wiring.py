"""The composition root: the one place the service's parts are built and connected.

`app.py`, the local worker, the benchmark and the tests all call `build()`; they differ only
in the backend they hand it: the AWS adapters (`aws_backend`, what runs on AWS, on
`chalice local` against the emulator, and in the tests against moto) or the in-memory
twins (`memory_backend`, for the fast tests).
"""
import time
from dataclasses import dataclass
from typing import Callable

from chalicelib import aws
from chalicelib.adapters.dynamodb import DynamoCatalog
from chalicelib.adapters.memory_catalog import MemoryCatalog
from chalicelib.adapters.memory_queue import MemoryQueue
from chalicelib.adapters.memory_store import MemoryStore
from chalicelib.adapters.s3 import S3Store
from chalicelib.adapters.sqs import SqsQueue
from chalicelib.joiner import Joiner
from chalicelib.media.chunk_join import ChunkJoin, JoinLimits
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.media.fold import Folder
from chalicelib.media.joins import JoinStrategy
from chalicelib.media.segment_join import SegmentJoin
from chalicelib.ports import Backend
from chalicelib.reencodes import Reencodes
from chalicelib.renditions import RenditionJob
from chalicelib.settings import Settings
from chalicelib.videos import VideoService


@dataclass(frozen=True)
class Services:
    settings: Settings
    backend: Backend
    videos: VideoService  # the API's use cases
    joiner: Joiner  # the join job
    renditions: RenditionJob  # the MP4 rendition job
    reencodes: Reencodes  # the steps of a join that re-encodes complete files that differ


def aws_backend(settings: Settings) -> Backend:
    return Backend(
        catalog=DynamoCatalog(aws.videos_table, settings.expire_after_seconds,
                              settings.id_block_size),
        store=S3Store(aws.s3(), settings.bucket_name, settings.presigned_url_seconds),
        queue=SqsQueue(aws.sqs(), settings.job_queue_name),
    )


def memory_backend(clock: Callable[[], float] = time.time, id_block_size: int = 1) -> Backend:
    return Backend(MemoryCatalog(id_block_size), MemoryStore(), MemoryQueue(clock))


def join_strategies(settings: Settings, backend: Backend, folder: Folder,
                    ffmpeg: Ffmpeg, reencodes: Reencodes) -> list[JoinStrategy]:
    """The strategies the join job asks, in order: the first that does not decline joins."""
    return [
        SegmentJoin(folder, backend.store, ffmpeg),  # a WebM/Matroska stream, folded
        ChunkJoin(backend.store, ffmpeg,  # anything ffmpeg reads
                  JoinLimits(settings.allow_reencode, settings.max_reencode_seconds), reencodes),
    ]


def build(settings: Settings, backend: Backend | None = None,
          clock: Callable[[], float] = time.time) -> Services:
    backend = backend or aws_backend(settings)
    ffmpeg = Ffmpeg(settings.ffmpeg_binary)
    folder = Folder(backend.catalog, backend.store)
    reencodes = Reencodes(settings, backend, ffmpeg, clock)
    strategies = join_strategies(settings, backend, folder, ffmpeg, reencodes)
    return Services(
        settings=settings, backend=backend,
        videos=VideoService(settings, backend, clock),
        joiner=Joiner(settings, backend, strategies, folder, ffmpeg, clock),
        renditions=RenditionJob(settings, backend, ffmpeg, clock),
        reencodes=reencodes,
    )
