"""The join job: turn a video's stored chunks into one compiled, verified, seekable object.

Runs off the request path (an SQS-triggered Lambda on AWS, the local worker under
`make run`). It owns the sequence: decide whether to join now, ask the strategies
(chalicelib.media.joins) to prepare the join, upload while verifying and making the poster,
then record the result or the failure. It is idempotent: a join for a chunk count already
compiled does nothing, and the compiled object's key is derived from that count.
"""
import dataclasses
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib import leases, renditions, telemetry, transfers
from chalicelib.errors import (
    ChunkMissing,
    ConditionFailed,
    FoldSuperseded,
    HandedOff,
    NotPlayable,
    StorageUnavailable,
)
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.media.fold import Folder
from chalicelib.media.joins import JoinStrategy, PreparedJoin
from chalicelib.models import JoinOutcome, Video
from chalicelib.ports import Backend
from chalicelib.settings import Settings

logger = Logger(child=True)

# A chunk claimed this long ago and still not in S3 will not arrive: its append died.
LOST_CHUNK_SECONDS = 120
# How often a join goes on from another job's fold before it gives up for this run.
_FOLD_RETRIES = 3
# Joins of the same chunks that may start and vanish (a worker killed, out of time or
# memory) before the video is failed rather than tried forever.
MAX_JOIN_ATTEMPTS = 3


class Joiner:
    def __init__(self, settings: Settings, backend: Backend, strategies: list[JoinStrategy],
                 folder: Folder, ffmpeg: Ffmpeg, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.catalog = backend.catalog
        self.store = backend.store
        self.queue = backend.queue
        self.strategies = strategies  # asked in order; the first that does not decline joins
        self.folder = folder  # folds while the recording goes on
        self.ffmpeg = ffmpeg  # makes the poster
        self.clock = clock

    def run(self, video_id: int, urgent: bool = True) -> JoinOutcome:
        """Join the video's chunks as they are now; returns what happened, for the log.

        A join that is not urgent waits until no chunk has arrived for JOIN_DELAY_SECONDS:
        joining while the recording goes on would re-read the whole video after every
        append, and compete with the appends for the machine. It folds what has arrived
        into segments (chalicelib.media.fold) and puts itself back on the queue instead; a
        GET that wants the video asks for an urgent join.
        """
        now = self.clock()
        video = self.catalog.get(video_id)
        if video is None:
            return JoinOutcome.NO_SUCH_VIDEO
        if not video.needs_join():
            self._tidy(video)
            return JoinOutcome.UP_TO_DATE
        if video.joining_now(now, self.settings.join_stall_seconds):
            return JoinOutcome.ALREADY_BEING_JOINED
        quiet_for = now - video.updated_at
        if not urgent and video.join_urgent_at is None and quiet_for < self.settings.join_delay_seconds:
            self._fold(video)
            self.queue.schedule_join(video_id, math.ceil(self.settings.join_delay_seconds - quiet_for))
            self.catalog.renew_join_request(video_id, now)
            return JoinOutcome.WAITING_FOR_PAUSE
        attempt = video.next_join_attempt()
        video = self.catalog.start_join(video_id, now, attempt)
        if attempt > MAX_JOIN_ATTEMPTS:
            reason = (f"the join of these chunks started {attempt - 1} times and never finished: "
                      "it runs out of time or memory")
            self.catalog.fail_join(video_id, video.chunk_count, reason)
            logger.error("join abandoned", extra={"video_id": video_id, "reason": reason})
            telemetry.join_failed("abandoned")
            return JoinOutcome.FAILED
        if not video.needs_join():
            self.catalog.end_join(video_id)
            return JoinOutcome.UP_TO_DATE
        try:
            # What this join moves through S3, apart from anything else the process's store
            # does meanwhile (chalicelib.transfers).
            with self._lease(video), tempfile.TemporaryDirectory(dir=self.settings.work_dir) as work_dir, \
                    transfers.scope() as moved:
                timings: dict[str, float] = {}
                started = time.monotonic()
                prepared = _timed(timings, "join", self._prepare)(video, work_dir)
                outcome = _timed(timings, "publish", self._publish)(video, prepared, work_dir,
                                                                    timings, started, moved)
                logger.info("join timings", extra={"video_id": video_id, "seconds": timings,
                                                   "join_method": prepared.method.value,
                                                   **moved.snapshot().as_log()})
        except ChunkMissing as missing:
            self._chunk_missing(video, missing.index)
            return JoinOutcome.WAITING_FOR_CHUNK
        except HandedOff:
            # The re-encode's steps (chalicelib.reencodes) go on: they keep this join's
            # lease while they run, and the last of them asks for the join again.
            return JoinOutcome.HANDED_OFF
        except NotPlayable as error:
            self.catalog.fail_join(video_id, video.chunk_count, error.message)
            logger.info("join failed", extra={"video_id": video_id, "reason": error.message})
            telemetry.join_failed("not_playable")
            return JoinOutcome.FAILED
        except (StorageUnavailable, FoldSuperseded):
            self.catalog.end_join(video_id)  # it will go through later: the delivery is retried
            raise
        except Exception as error:
            # A fault of this code, not of the recording: retrying would meet it again.
            reason = f"the join failed ({type(error).__name__}); the chunks are kept"
            logger.exception("join failed unexpectedly", extra={"video_id": video_id})
            self.catalog.fail_join(video_id, video.chunk_count, reason)
            telemetry.join_failed("fault")
            return JoinOutcome.FAILED
        except BaseException:
            self.catalog.end_join(video_id)
            raise
        return outcome

    def _lease(self, video: Video):
        """Renew the join's lease every third of JOIN_STALL_SECONDS while it works: a join
        whose worker dies stops renewing, and the next request takes over within that time.
        It stops when this join is over, or another took its place."""
        return leases.renewed(
            lambda: self.catalog.renew_join_lease(video.video_id, video.join_started_at, self.clock()),
            self.settings.join_stall_seconds / 3, "join", video.video_id)

    def _fold(self, video: Video) -> None:
        try:
            self.folder.fold(video)
        except Exception:
            # Folding only saves the join work; the join reads the chunks whatever happened.
            logger.exception("folding failed", extra={"video_id": video.video_id})

    def _prepare(self, video: Video, work_dir: str) -> PreparedJoin:
        """The first strategy's join that does not decline. When another job's fold got
        ahead, go on from what it committed, still joining only this join's chunks."""
        for attempt in range(_FOLD_RETRIES):
            try:
                for strategy in self.strategies:
                    prepared = strategy.prepare(video, work_dir)
                    if prepared is not None:
                        return prepared
                raise NotPlayable("no join strategy takes this recording")
            except FoldSuperseded:
                if attempt == _FOLD_RETRIES - 1:
                    raise
                video = video.with_segments_of(self.catalog.get(video.video_id))

    def _publish(self, video: Video, prepared: PreparedJoin, work_dir: str,
                 timings: dict[str, float], started: float,
                 moved: transfers.TransferCounter) -> JoinOutcome:
        """Upload the joined video while it is verified and its poster is made; record it
        only once all three have succeeded, and leave nothing behind when one fails.
        `started`: when the join began (time.monotonic()), `moved`: what it has moved
        through S3 so far; both for its metrics."""
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                # Carried: the upload and the poster count in this join's scope.
                uploading = pool.submit(transfers.carried(_timed(timings, "upload", prepared.upload)))
                poster = pool.submit(transfers.carried(self._poster), video, prepared, work_dir)
                try:
                    _timed(timings, "check", prepared.verify)()
                finally:
                    for step in (uploading, poster):
                        step.exception()  # wait for it, whatever became of it
                uploading.result()
                poster_key = poster.result()
        except BaseException:
            prepared.abort()
            raise
        media = prepared.summary()
        try:
            replaced = self.catalog.finish_join(video.video_id, video.chunk_count, prepared.key,
                                                poster_key, media)
        except ConditionFailed:
            return JoinOutcome.SUPERSEDED
        # Ready from now on: the rendition is asked for first, so a client that sees the
        # video ready finds it listed (pending) rather than missing while sources are deleted.
        self._ask_for_rendition(video, media, prepared)
        # updated_at is when the last of these chunks was claimed.
        moved_now = moved.snapshot()
        telemetry.video_ready(prepared.method.value, time.monotonic() - started,
                              self.clock() - video.updated_at, moved_now.through_us,
                              moved_now.copied_in_s3)
        for key in replaced:
            self.store.delete(key)
        self._tidy(dataclasses.replace(video, compiled_chunks=video.chunk_count))
        logger.info("joined", extra={"video_id": video.video_id, "chunks": video.chunk_count,
                                     **media.as_dict(), **moved_now.as_log()})
        return JoinOutcome.JOINED

    def _ask_for_rendition(self, video: Video, media, prepared: PreparedJoin) -> None:
        """A compiled object that does not play everywhere gets an MP4 rendition, made by its
        own job (chalicelib.renditions). The video is ready whatever becomes of it: an outage
        here is logged, and the next GET ?format=mp4 asks for it."""
        if not renditions.wanted(media, prepared.info):
            return
        try:
            renditions.ask_for_rendition(
                self.catalog, self.queue, dataclasses.replace(video, compiled_chunks=video.chunk_count),
                self.clock(), self.settings.join_stall_seconds)
        except StorageUnavailable:
            logger.exception("could not ask for the rendition", extra={"video_id": video.video_id})

    def _tidy(self, video: Video) -> None:
        """A finished recording, joined and checked: what it was made from (its chunks and
        segments) is no longer needed; the compiled video and its poster are all it keeps."""
        if video.finalized_at is not None and video.compiled_chunks == video.chunk_count:
            self.store.delete_sources(video.video_id)

    def _poster(self, video: Video, prepared: PreparedJoin, work_dir: str) -> str | None:
        if prepared.info.video is None:
            return None
        path = os.path.join(work_dir, "poster.jpg")
        duration = prepared.info.duration or 0.0
        self.ffmpeg.poster(prepared.preview_path, path, at_seconds=min(1.0, duration / 10))
        key = self.store.compiled_key(video.video_id, video.chunk_count, "jpg")
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


def _timed(timings: dict[str, float], name: str, step: Callable) -> Callable:
    """step, noting how long each call took in timings[name] (for the log)."""
    def timed(*args):
        started = time.monotonic()
        try:
            return step(*args)
        finally:
            timings[name] = round(time.monotonic() - started, 3)
    return timed
