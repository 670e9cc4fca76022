"""The rendition job: the H.264/AAC MP4 rendition of a ready video, for the players that do
not play what the recorder wrote (iOS Safari and WebM with VP8/VP9/AV1 and Opus).

When the join job publishes a compiled object that does not already play everywhere
(`wanted`), it records a pending rendition for that compiled chunk count in the catalog and
queues a message of kind "rendition" on the join queue; that message comes back here (the
SQS-triggered join function on AWS, the local worker under `make run`, through
chalicelib.join_messages). The job downloads the compiled object to the work directory,
runs chalicelib.media.rendition.render on RENDITION_WORKERS threads, uploads the MP4 next
to the compiled object (`videos/<id>/compiled/<count>.h264.mp4`) and records it.

- Bounded: a video longer than RENDITION_MAX_SECONDS is recorded `too_long` with the reason,
  and nothing is encoded.
- A rendition that cannot be made is recorded `failed` with the reason (NotPlayable's
  message, or the kind of fault); a GET ?format=mp4 then answers 422, never a 500.
- Idempotent: a rendition of a compiled count that already has a result does nothing; a
  result for an older compiled count (a newer join finished meanwhile) or for a deleted video
  is refused by the catalog, and its object removed.
- A running job renews the pending state's requested_at every third of JOIN_STALL_SECONDS;
  a rendition not heard of for JOIN_STALL_SECONDS is asked for again by the next GET.

Not done: on AWS the pieces run on the threads of the one invocation, so the video's length
is bounded by the function's 900 s (RENDITION_MAX_SECONDS is set per stage to stay inside
it). One SQS message per piece (plan and split, encode_piece per message, encode_audio,
then assemble: each step of chalicelib.media.rendition is a function of files, made for
that) is the next step.
"""
import enum
import os
import tempfile
import time
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib import leases
from chalicelib.errors import ConditionFailed, NotPlayable, StorageUnavailable
from chalicelib.media import rendition as media_rendition
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.media.probe import MediaInfo
from chalicelib.models import MediaSummary, Rendition, RenditionState, Video
from chalicelib.ports import Backend, Catalog, JobQueue
from chalicelib.settings import Settings

logger = Logger(child=True)

FORMAT_MP4 = "mp4"
FORMATS = (FORMAT_MP4,)
CONTENT_TYPE = "video/mp4"


class RenditionOutcome(str, enum.Enum):
    NO_SUCH_VIDEO = "no such video"
    NOT_JOINED = "not joined yet"
    NOT_WANTED = "plays everywhere as it is"
    UP_TO_DATE = "rendered already"
    TOO_LONG = "too long"
    FAILED = "failed"
    RENDERED = "rendered"
    SUPERSEDED = "superseded by a newer join"


def plays_everywhere(media: MediaSummary) -> bool:
    """The compiled object itself is H.264 (and AAC or no audio) in MP4."""
    return (media.container == "mp4" and media.video_codec == "h264"
            and media.audio_codec in (None, "aac"))


def wanted(media: MediaSummary, info: MediaInfo | None = None) -> bool:
    """Whether a compiled object gets an MP4 rendition: a video (audio-only recordings get
    none) whose codecs are not H.264/AAC (media.rendition.needs_rendition, which also knows
    the H.264 profile when `info` is given), or that is not in MP4 (H.264 in Matroska is
    re-encoded too: a remux would do, and is not done)."""
    if media.audio_only:
        return False
    if info is not None and media_rendition.needs_rendition(info):
        return True
    return not plays_everywhere(media)


def ask_for_rendition(catalog: Catalog, queue: JobQueue, video: Video, now: float,
                      stall_seconds: int) -> bool:
    """Record a pending rendition of the video's compiled object and queue its job, unless
    one is pending and alive, or has a result. True when it was asked for."""
    if video.compiled_chunks is None:
        return False
    if not catalog.request_rendition(video.video_id, video.compiled_chunks, now, stall_seconds):
        return False
    try:
        queue.schedule_rendition(video.video_id)
    except StorageUnavailable:
        # Recorded as pending: the next GET ?format=mp4 asks again once it counts as lost.
        logger.exception("could not queue a rendition", extra={"video_id": video.video_id})
    return True


class RenditionJob:
    def __init__(self, settings: Settings, backend: Backend, ffmpeg: Ffmpeg,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.catalog = backend.catalog
        self.store = backend.store
        self.ffmpeg = ffmpeg
        self.clock = clock

    def run(self, video_id: int) -> RenditionOutcome:
        """Make the rendition of the video's compiled object as it is now."""
        video = self.catalog.get(video_id)
        if video is None:
            return RenditionOutcome.NO_SUCH_VIDEO
        if video.compiled_chunks is None or video.media is None:
            return RenditionOutcome.NOT_JOINED
        chunks = video.compiled_chunks
        current = video.current_rendition()
        if current is not None and current.state is not RenditionState.PENDING:
            return RenditionOutcome.UP_TO_DATE
        if not wanted(video.media):
            return RenditionOutcome.NOT_WANTED
        limit = self.settings.rendition_max_seconds
        duration = video.media.duration
        if limit and duration is not None and duration > limit:
            reason = (f"the video lasts {duration:.0f} s, more than the {limit} s an MP4 rendition "
                      "is made for (RENDITION_MAX_SECONDS): play the original")
            return self._record(video_id, Rendition(chunks, RenditionState.TOO_LONG, error=reason),
                                RenditionOutcome.TOO_LONG)
        with self._lease(video_id, chunks), \
                tempfile.TemporaryDirectory(dir=self.settings.work_dir) as work_dir:
            source = os.path.join(work_dir, "source." + video.compiled_key.rsplit(".", 1)[-1])
            out = os.path.join(work_dir, "rendition.mp4")
            started = time.monotonic()
            try:
                self.store.download_file(video.compiled_key, source)
                made = media_rendition.render(self.ffmpeg, source, out,
                                              workers=self.settings.rendition_workers or None,
                                              work_dir=work_dir)
                info = self.ffmpeg.probe(out)
            except NotPlayable as error:
                return self._failed(video_id, chunks, error.message)
            except StorageUnavailable:
                raise  # the delivery is retried
            except Exception as error:
                logger.exception("rendition failed unexpectedly", extra={"video_id": video_id})
                return self._failed(video_id, chunks,
                                    f"the rendition failed ({type(error).__name__})")
            key = self.store.rendition_key(video_id, chunks)
            self.store.upload_file(out, key, CONTENT_TYPE)
            ready = Rendition(chunks, RenditionState.READY, key=key, byte_size=os.path.getsize(out),
                              video_codec=info.video.codec if info.video else None,
                              audio_codec=info.audio.codec if info.audio else None)
            outcome = self._record(video_id, ready, RenditionOutcome.RENDERED)
            if outcome is RenditionOutcome.SUPERSEDED:
                self.store.delete(key)
            else:
                logger.info("rendered", extra={"video_id": video_id, "chunks": chunks,
                                               "pieces": len(made.pieces),
                                               "seconds": round(time.monotonic() - started, 3),
                                               "byte_size": ready.byte_size})
            return outcome

    def _failed(self, video_id: int, chunks: int, reason: str) -> RenditionOutcome:
        logger.info("rendition failed", extra={"video_id": video_id, "reason": reason})
        return self._record(video_id, Rendition(chunks, RenditionState.FAILED, error=reason),
                            RenditionOutcome.FAILED)

    def _record(self, video_id: int, result: Rendition,
                outcome: RenditionOutcome) -> RenditionOutcome:
        try:
            replaced = self.catalog.finish_rendition(video_id, result)
        except ConditionFailed:
            return RenditionOutcome.SUPERSEDED  # a newer join, or the video was deleted
        for key in replaced:
            self.store.delete(key)
        return outcome

    def _lease(self, video_id: int, chunks: int):
        """Renew the pending rendition every third of JOIN_STALL_SECONDS while it is made."""
        return leases.renewed(lambda: self.catalog.renew_rendition(video_id, chunks, self.clock()),
                              self.settings.join_stall_seconds / 3, "rendition", video_id,
                              at_once=True)
