"""The rendition job: the H.264/AAC MP4 rendition of a ready video, for the players that do
not play what the recorder wrote (iOS Safari and WebM with VP8/VP9/AV1 and Opus), made in
pieces that run at once, each in its own invocation.

When the join job publishes a compiled object that does not already play everywhere
(`wanted`), it records a pending rendition for that compiled chunk count in the catalog and
queues a message of kind RENDITION on the join queue. Its messages come back here (the
SQS-triggered join function on AWS, the local workers under `make run`, through
chalicelib.join_messages), one step per message, each step passing files to the next
through S3 (`videos/<id>/rendition/<count>/`):

1. **plan** (RENDITION): download the compiled object; first stream-copy its audio track
   alone (media.rendition.copy_audio), store it and queue RENDITION_AUDIO, so the one audio
   pass, the longest job at an hour, runs while the video is cut; then cut the video at
   keyframes into pieces of about RENDITION_PIECE_SECONDS (plan_pieces), stream-copy each
   piece's video into a file of its own (split_pieces), store them and the plan, and queue
   one RENDITION_PIECE message per piece. A video that already plays everywhere (H.264 in
   Matroska or WebM: media.rendition.copies_video) is copied here into the one piece's
   output instead, and no piece step is queued;
2. **piece** (one per piece, all at once) encodes its piece to H.264; **audio** encodes the
   whole audio track to AAC in one pass (audio encoded in pieces would click at every
   boundary). Each stores its output, then lists what is stored: the step that finds every
   output there, and the plan, queues RENDITION_ASSEMBLE (two may; assembling twice is
   harmless). The audio may finish before the plan is stored: the plan step, listing what
   is stored once its plan is, then finds the audio there and queues the assembly itself;
3. **assemble** joins the encoded pieces and the audio by stream copy (media.mp4_join): it
   reads the pieces' indexes alone (a ranged read of each piece's head), writes the joined
   index, then streams the MP4 next to the compiled object
   (`videos/<id>/compiled/<count>.h264.mp4`) as a multipart upload, its parts sent while
   the next pieces are fetched; it records the rendition and removes the steps' files.

So no invocation encodes more than one piece, whatever the recording's length, and a piece
that fails (its invocation killed, S3 out of reach) comes back alone: SQS delivers its
message again. Asked again after a stall, the plan step reuses the stored plan and queues
only the steps whose output is missing.

- Bounded: a video longer than RENDITION_MAX_SECONDS is recorded `too_long` with the reason,
  and nothing is encoded.
- A rendition that cannot be made (in any step) is recorded `failed` with the reason
  (NotPlayable's message, or the kind of fault); a GET ?format=mp4 then answers 422, never
  a 500. The other steps of that rendition then find it no longer pending and do nothing.
- Idempotent: a step of a rendition that is no longer pending (made, failed, or of an
  older compiled count: a newer join finished meanwhile) does nothing but remove that
  rendition's leftover files; a result for an older compiled count or a deleted video is
  refused by the catalog, and its object removed.
- Each running step renews the pending state's requested_at every third of
  JOIN_STALL_SECONDS; a rendition not heard of for JOIN_STALL_SECONDS (its messages lost,
  or waiting in a long queue) is asked for again by the next GET.
"""
import dataclasses
import enum
import json
import os
import time
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib.errors import ConditionFailed, NotPlayable, StorageUnavailable
from chalicelib.media import mp4_join
from chalicelib.media import rendition as media_rendition
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.media.probe import MediaInfo
from chalicelib.models import MediaSummary, Rendition, RenditionState, Video
from chalicelib.ports import (RENDITION, RENDITION_ASSEMBLE, RENDITION_AUDIO, RENDITION_PIECE,
                              Backend, Catalog, JobQueue, JoinRequest)
from chalicelib.settings import Settings
from chalicelib.steps import AUDIO, PLAN, StepJob, outputs, piece_name

logger = Logger(child=True)

FORMAT_MP4 = "mp4"
FORMATS = (FORMAT_MP4,)
CONTENT_TYPE = "video/mp4"

# The files the steps pass on, under the rendition's prefix in the bucket.
WORK = "rendition"
AUDIO_SOURCE = "audio-source.mka"


def source_name(index: int) -> str:
    return f"source-{index:05d}.mkv"


class RenditionOutcome(str, enum.Enum):
    NO_SUCH_VIDEO = "no such video"
    NOT_JOINED = "not joined yet"
    NOT_WANTED = "plays everywhere as it is"
    UP_TO_DATE = "rendered already"
    TOO_LONG = "too long"
    FAILED = "failed"
    PLANNED = "planned: its pieces are queued"
    STEP_DONE = "step done: others still running"
    ASSEMBLY_QUEUED = "step done: every piece is there, the assembly is queued"
    STEPS_MISSING = "the assembly found steps missing: queued again"
    RENDERED = "rendered"
    SUPERSEDED = "superseded by a newer join"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the plan step decided and stored: the pieces, and whether there is audio."""
    pieces: list[media_rendition.Piece]
    audio: bool

    def outputs(self) -> set[str]:
        """The names of the files the piece and audio steps store."""
        return outputs([piece.index for piece in self.pieces], self.audio)

    def to_json(self) -> bytes:
        return json.dumps({"pieces": [dataclasses.asdict(piece) for piece in self.pieces],
                           "audio": self.audio}).encode()

    @classmethod
    def from_json(cls, body: bytes) -> "Plan":
        fields = json.loads(body)
        return cls([media_rendition.Piece(**piece) for piece in fields["pieces"]], fields["audio"])


def _steps_for(plan: Plan, video_id: int, chunks: int, outputs: set[str]) -> list[JoinRequest]:
    """The steps that make these outputs of the plan."""
    steps = [JoinRequest(video_id, False, RENDITION_PIECE, chunks, piece.index)
             for piece in plan.pieces if piece_name(piece.index) in outputs]
    if plan.audio and AUDIO in outputs:
        steps.append(JoinRequest(video_id, False, RENDITION_AUDIO, chunks))
    return steps


def plays_everywhere(media: MediaSummary) -> bool:
    """The compiled object itself is H.264 (and AAC or no audio) in MP4."""
    return (media.container == "mp4" and media.video_codec == "h264"
            and media.audio_codec in (None, "aac"))


def wanted(media: MediaSummary, info: MediaInfo | None = None) -> bool:
    """Whether a compiled object gets an MP4 rendition: a video (audio-only recordings get
    none) whose codecs are not H.264/AAC (media.rendition.needs_rendition, which also knows
    the H.264 profile when `info` is given), or that is not in MP4 (H.264 in Matroska or
    WebM: its rendition copies the video and encodes only the audio)."""
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


class RenditionJob(StepJob):
    job = "rendition"

    def __init__(self, settings: Settings, backend: Backend, ffmpeg: Ffmpeg,
                 clock: Callable[[], float] = time.time):
        super().__init__(settings, backend, ffmpeg, WORK, clock)

    def run(self, request: JoinRequest) -> RenditionOutcome:
        """The step a message asks for (RENDITION: the plan)."""
        if request.kind == RENDITION:
            return self.plan(request.video_id)
        steps = {RENDITION_PIECE: (self._encode_piece, f"piece {request.piece}"),
                 RENDITION_AUDIO: (self._encode_audio, "the audio"),
                 RENDITION_ASSEMBLE: (self._assemble, "the assembly")}
        action, what = steps[request.kind]
        return self._step(request.video_id, request.chunks, lambda work: action(request, work), what)

    # --- 1. plan ------------------------------------------------------------------------

    def plan(self, video_id: int) -> RenditionOutcome:
        """Plan the rendition of the video's compiled object as it is now, store the pieces'
        sources and queue their steps."""
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
        return self._step(video_id, chunks, lambda work: self._plan(video, work))

    def _plan(self, video: Video, work: str) -> RenditionOutcome:
        video_id, chunks = video.video_id, video.compiled_chunks
        stored = self.files.names(video_id, chunks)
        queued: list[JoinRequest] = []
        if PLAN in stored:  # asked again: what is stored stays, what is missing runs again
            plan = Plan.from_json(self.files.read_plan(video_id, chunks, work))
        else:
            plan, queued = self._split(video, work)
            stored = self.files.names(video_id, chunks)  # a copied video's piece, the audio
        missing = [request for request in _steps_for(plan, video_id, chunks, plan.outputs() - stored)
                   if request not in queued]
        if missing:
            self.queue.schedule_steps(missing)
        elif plan.outputs() <= stored:  # the audio step, if any, finished before the plan was stored
            self.queue.schedule_steps([JoinRequest(video_id, False, RENDITION_ASSEMBLE, chunks)])
        logger.info("rendition planned", extra={"video_id": video_id, "chunks": chunks,
                                                "pieces": len(plan.pieces),
                                                "queued": len(missing) + len(queued)})
        return RenditionOutcome.PLANNED

    def _split(self, video: Video, work: str) -> tuple[Plan, list[JoinRequest]]:
        """Store the audio alone and queue its step, then cut the video and store its
        pieces' sources and the plan. The plan, and the steps queued already."""
        video_id, chunks = video.video_id, video.compiled_chunks
        source = os.path.join(work, "source." + video.compiled_key.rsplit(".", 1)[-1])
        self.store.download_file(video.compiled_key, source)
        queued = []
        audio_source = media_rendition.copy_audio(self.ffmpeg, source, os.path.join(work, AUDIO_SOURCE))
        if audio_source is not None:
            self.files.put(video_id, chunks, audio_source, AUDIO_SOURCE)
            queued = [JoinRequest(video_id, False, RENDITION_AUDIO, chunks)]
            self.queue.schedule_steps(queued)
        info = self.ffmpeg.probe(source)
        if media_rendition.copies_video(info):
            # The video plays as it is: copied here, stored as the one piece's output (no
            # piece step), and only the audio is encoded.
            copied = os.path.join(work, piece_name(0))
            pieces = [media_rendition.copy_video(self.ffmpeg, source, copied)]
            files = [(copied, piece_name(0))]
        else:
            target = self.settings.rendition_piece_seconds
            pieces = media_rendition.plan_pieces(self.ffmpeg, source, target, target * 4 / 3)
            paths = media_rendition.split_pieces(self.ffmpeg, source, pieces, work)
            files = [(path, source_name(piece.index)) for path, piece in zip(paths, pieces)]
        plan = Plan(pieces, audio_source is not None)
        self.files.put_plan(video_id, chunks, files, plan.to_json(), work)
        return plan, queued

    # --- 2. a piece, the audio ------------------------------------------------------------

    def _encode_piece(self, request: JoinRequest, work: str) -> RenditionOutcome:
        video_id, chunks = request.video_id, request.chunks
        plan = Plan.from_json(self.files.read_plan(video_id, chunks, work))
        if not 0 <= request.piece < len(plan.pieces):
            raise NotPlayable(f"not in the plan ({len(plan.pieces)} pieces)")
        piece = plan.pieces[request.piece]
        source = self.files.get(video_id, chunks, source_name(piece.index), work)
        out = os.path.join(work, piece_name(piece.index))
        media_rendition.encode_piece(self.ffmpeg, source, piece, out)
        self.files.put(video_id, chunks, out, piece_name(piece.index))
        return self._after(plan, video_id, chunks)

    def _encode_audio(self, request: JoinRequest, work: str) -> RenditionOutcome:
        video_id, chunks = request.video_id, request.chunks
        source = self.files.get(video_id, chunks, AUDIO_SOURCE, work)
        out = os.path.join(work, AUDIO)
        if media_rendition.encode_audio(self.ffmpeg, source, out) is None:
            raise NotPlayable("the audio track the plan found holds no audio")
        self.files.put(video_id, chunks, out, AUDIO)
        if PLAN not in self.files.names(video_id, chunks):  # queued before the video was cut:
            return RenditionOutcome.STEP_DONE  # the plan step, storing its plan after this, finds it
        return self._after(Plan.from_json(self.files.read_plan(video_id, chunks, work)), video_id, chunks)

    def _after(self, plan: Plan, video_id: int, chunks: int) -> RenditionOutcome:
        """Each step lists what is stored once its output is: S3 lists what was written
        before, so the step that finishes last finds everything and queues the assembly
        (two finishing together may both; the second assembly finds the work done)."""
        if plan.outputs() <= self.files.names(video_id, chunks):
            self.queue.schedule_steps([JoinRequest(video_id, False, RENDITION_ASSEMBLE, chunks)])
            return RenditionOutcome.ASSEMBLY_QUEUED
        return RenditionOutcome.STEP_DONE

    # --- 3. assemble ----------------------------------------------------------------------

    def _assemble(self, request: JoinRequest, work: str) -> RenditionOutcome:
        video_id, chunks = request.video_id, request.chunks
        plan = Plan.from_json(self.files.read_plan(video_id, chunks, work))
        missing = plan.outputs() - self.files.names(video_id, chunks)
        if missing:  # an output removed since (by hand, a lifecycle rule): made again
            self.queue.schedule_steps(_steps_for(plan, video_id, chunks, missing))
            return RenditionOutcome.STEPS_MISSING
        started = time.monotonic()
        names = [piece_name(piece.index) for piece in plan.pieces]
        heads = self.files.read_heads(video_id, chunks, names)
        audio = self.files.get(video_id, chunks, AUDIO, work) if plan.audio else None
        # encode_piece checked each piece's frames before it was stored: the plan's count
        # is what the joined file must hold, and the pieces are not read again to count them
        joined = media_rendition.join_heads(heads, mp4_join.read_file_head(audio) if audio else None,
                                            sum(piece.frames for piece in plan.pieces))
        head = os.path.join(work, "rendition-head.mp4")
        with open(head, "wb") as out:
            out.write(joined.head)
        info = media_rendition.check_joined(self.ffmpeg, joined, head)
        key = self.store.rendition_key(video_id, chunks)
        self.files.publish_joined(video_id, chunks, joined, names, [audio] if audio else [], work,
                                  key, CONTENT_TYPE)
        ready = Rendition(chunks, RenditionState.READY, key=key, byte_size=joined.size,
                          video_codec=info.video.codec if info.video else None,
                          audio_codec=info.audio.codec if info.audio else None)
        outcome = self._record(video_id, ready, RenditionOutcome.RENDERED)
        if outcome is RenditionOutcome.SUPERSEDED:
            self.store.delete(key)
        else:
            logger.info("rendered", extra={"video_id": video_id, "chunks": chunks,
                                           "pieces": len(plan.pieces), "byte_size": ready.byte_size,
                                           "assembly_seconds": round(time.monotonic() - started, 3)})
        return outcome

    # --- every step ---------------------------------------------------------------------

    def _step(self, video_id: int, chunks: int, action: Callable[[str], RenditionOutcome],
              what: str | None = None) -> RenditionOutcome:
        """Run a step of the pending rendition of `chunks` chunks in a work directory of
        its own, renewing the pending state while it runs; a step of a rendition that is
        no longer pending removes that rendition's files and does nothing. A failure's
        reason starts with `what` the step made (a piece, the audio)."""
        video = self.catalog.get(video_id)
        current = video.current_rendition() if video is not None else None
        if current is None or current.chunks != chunks or current.state is not RenditionState.PENDING:
            self.files.delete(video_id, chunks)
            if current is not None and current.chunks == chunks:
                return RenditionOutcome.UP_TO_DATE
            return RenditionOutcome.SUPERSEDED if video is not None else RenditionOutcome.NO_SUCH_VIDEO
        renew = lambda: self.catalog.renew_rendition(video_id, chunks, self.clock())  # noqa: E731
        outcome, reason = self.attempt(video_id, renew, action)
        if reason is None:
            return outcome
        return self._failed(video_id, chunks, f"{what}: {reason}" if what else reason)

    def _failed(self, video_id: int, chunks: int, reason: str) -> RenditionOutcome:
        logger.info("rendition failed", extra={"video_id": video_id, "reason": reason})
        return self._record(video_id, Rendition(chunks, RenditionState.FAILED, error=reason),
                            RenditionOutcome.FAILED)

    def _record(self, video_id: int, result: Rendition,
                outcome: RenditionOutcome) -> RenditionOutcome:
        try:
            replaced = self.catalog.finish_rendition(video_id, result)
        except ConditionFailed:
            outcome = RenditionOutcome.SUPERSEDED  # a newer join, or the video was deleted
            replaced = []
        for key in replaced:
            self.store.delete(key)
        self.files.delete(video_id, result.chunks)
        return outcome
