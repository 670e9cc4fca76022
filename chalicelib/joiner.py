"""The join job: turn a video's stored chunks into one compiled, seekable object.

Runs off the request path (an SQS-triggered Lambda on AWS, the local worker under
`make run`). It is idempotent: a join for a chunk count already compiled does nothing, and
the compiled object's key is derived from that count.
"""
import functools
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib import storage
from chalicelib.catalog import Catalog, ConditionFailed, Video
from chalicelib.errors import NotPlayable
from chalicelib.jobs import JobQueue
from chalicelib.media import Ffmpeg, JoinedVideo
from chalicelib.segments import Segments
from chalicelib.settings import Settings
from chalicelib.storage import PREFETCH, PREFETCH_BYTES, ChunkMissing, ObjectStore, prefetch_in_order

logger = Logger(child=True)

# A chunk claimed this long ago and still not in S3 will not arrive: its append died.
LOST_CHUNK_SECONDS = 120


class Joiner:
    def __init__(self, settings: Settings, catalog: Catalog, store: ObjectStore,
                 queue: JobQueue, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.queue = queue
        self.clock = clock
        self.ffmpeg = Ffmpeg(settings.ffmpeg_binary, settings.allow_reencode)
        self.segments = Segments(catalog, store, self.ffmpeg)

    def run(self, video_id: int, urgent: bool = True) -> str:
        """Join the video's chunks as they are now; returns what happened, for the log.

        A join that is not urgent waits until no chunk has arrived for JOIN_DELAY_SECONDS:
        joining while the recording goes on would re-read the whole video after every
        append, and compete with the appends for the machine. It folds what has arrived
        into segments (chalicelib.segments) and puts itself back on the queue instead; a
        GET that wants the video asks for an urgent join.
        """
        now = self.clock()
        video = self.catalog.get(video_id)
        if video is None:
            return "no such video"
        if not self._needs_join(video):
            return "up to date"
        if video.joining_now(now, self.settings.join_stall_seconds):
            return "already being joined"
        quiet_for = now - video.updated_at
        if not urgent and video.join_urgent_at is None and quiet_for < self.settings.join_delay_seconds:
            self._fold(video)
            self.queue.schedule_join(video_id, math.ceil(self.settings.join_delay_seconds - quiet_for))
            self.catalog.renew_join_request(video_id, now)
            return "waiting for the recording to pause"
        video = self.catalog.start_join(video_id, now)
        target = video.chunk_count
        if not self._needs_join(video):
            self.catalog.end_join(video_id)
            return "up to date"
        try:
            with tempfile.TemporaryDirectory(dir=self.settings.work_dir) as work_dir:
                timings: dict[str, float] = {}
                joined = _timed(timings, "join", self._join)(video, work_dir)
                outcome = _timed(timings, "publish", self._publish)(video, joined, work_dir, timings)
                logger.info("join timings", extra={"video_id": video_id, "seconds": timings,
                                                   "join_method": joined.video.method})
        except ChunkMissing as missing:
            self._chunk_missing(video, missing.index)
            return "waiting for a chunk"
        except NotPlayable as error:
            self.catalog.fail_join(video_id, target, error.message)
            logger.info("join failed", extra={"video_id": video_id, "reason": error.message})
            return "failed"
        except BaseException:
            self.catalog.end_join(video_id)
            raise
        return outcome

    @staticmethod
    def _needs_join(video: Video) -> bool:
        return (video.chunk_count not in (video.compiled_chunks, video.failed_chunks)
                and bool(video.stored_chunk_indices()))

    def _fold(self, video: Video) -> None:
        try:
            self.segments.fold(video)
        except Exception:
            # Folding only saves the join work; the join reads the chunks whatever happened.
            logger.exception("folding failed", extra={"video_id": video.video_id})

    def _join(self, video: Video, work_dir: str) -> "_Joined":
        """The joined video, assembled from segments when the video was folded, joined by
        ffmpeg from the chunks otherwise."""
        assembly = self.segments.assemble(video, work_dir)
        if assembly is not None:
            return _Joined(assembly.video, assembly.composition.key, assembly.composition.complete,
                           functools.partial(self.segments.check, assembly), assembly.byte_size)
        indices = video.stored_chunk_indices()
        average_chunk = max(1, video.byte_count // max(1, len(indices)))
        window = max(2, min(PREFETCH, PREFETCH_BYTES // average_chunk))
        chunks = prefetch_in_order(
            indices, functools.partial(self.store.read_chunk, video.video_id), window)
        joined = self.ffmpeg.join(chunks, work_dir)
        key = storage.compiled_key(video.video_id, video.chunk_count, joined.container.extension)
        return _Joined(joined, key,
                       functools.partial(self.store.upload_file, joined.path, key, joined.content_type),
                       functools.partial(self.ffmpeg.check_decodes, joined.path, joined.info.duration),
                       os.path.getsize(joined.path))

    def _publish(self, video: Video, joined: "_Joined", work_dir: str,
                 timings: dict[str, float]) -> str:
        """Upload the joined video while it is decode-checked and its poster is made;
        record it only once all three have succeeded."""
        target, key = video.chunk_count, joined.key
        with ThreadPoolExecutor(max_workers=2) as pool:
            uploading = pool.submit(_timed(timings, "upload", joined.upload))
            poster = pool.submit(self._poster, video, joined.video, work_dir)
            try:
                _timed(timings, "check", joined.check)()
            except NotPlayable:
                for step in (uploading, poster):
                    step.exception()  # wait for it, whatever became of it
                self.store.delete(key)
                raise
            uploading.result()
            poster_key = poster.result()
        media_info = media_summary(joined.video, joined.byte_size)
        try:
            replaced = self.catalog.finish_join(video.video_id, target, key, poster_key, media_info)
        except ConditionFailed:
            return "superseded by a newer join"
        if replaced and replaced != key:
            self.store.delete(replaced)
            self.store.delete(os.path.splitext(replaced)[0] + ".jpg")
        logger.info("joined", extra={"video_id": video.video_id, "chunks": target, **media_info})
        return "joined"

    def _poster(self, video: Video, joined: JoinedVideo, work_dir: str) -> str | None:
        if joined.info.video is None:
            return None
        path = os.path.join(work_dir, "poster.jpg")
        duration = joined.info.duration or 0.0
        self.ffmpeg.poster(joined.path, path, at_seconds=min(1.0, duration / 10))
        key = storage.compiled_key(video.video_id, video.chunk_count, "jpg")
        self.store.upload_file(path, key, "image/jpeg")
        return key

    def _chunk_missing(self, video: Video, index: int) -> None:
        now = self.clock()
        if now - video.updated_at > LOST_CHUNK_SECONDS:
            # Its append died between claiming the index and storing the bytes.
            self.catalog.release_chunk(video.video_id, index, 0)
        self.catalog.end_join(video.video_id)
        if self.catalog.request_join(video.video_id, now, self.settings.join_stall_seconds, urgent=True):
            self.queue.schedule_join(video.video_id, 1, urgent=True)


@dataclass(frozen=True)
class _Joined:
    """A joined video on its way to being published."""
    video: JoinedVideo
    key: str  # the compiled object's key
    upload: Callable[[], None]  # writes the object at key
    check: Callable[[], None]  # decodes it, raising NotPlayable
    byte_size: int


def _timed(timings: dict[str, float], name: str, step: Callable) -> Callable:
    """step, noting how long each call took in timings[name] (for the log)."""
    def timed(*args):
        started = time.monotonic()
        try:
            return step(*args)
        finally:
            timings[name] = round(time.monotonic() - started, 3)
    return timed


def media_summary(joined: JoinedVideo, byte_size: int) -> dict:
    info = joined.info
    video, audio = info.video, info.audio
    summary = {"container": joined.container.name, "content_type": joined.content_type,
               "duration": info.duration, "byte_size": byte_size,
               "join_method": joined.method, "audio_only": video is None,
               "video_codec": video.codec if video else None,
               "width": video.width if video else None, "height": video.height if video else None,
               "audio_codec": audio.codec if audio else None}
    return {k: v for k, v in summary.items() if v is not None}
