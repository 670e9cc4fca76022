"""The re-encode of complete files that differ, in steps of the join: no invocation
re-encodes more than one piece of about RENDITION_PIECE_SECONDS (a file's video cut at its
keyframes, as the rendition cuts), whatever the recording's or a file's length.

A join whose chunks are complete files that differ (chalicelib.media.chunk_join) calls
`Reencodes.reencode` with the files it has remuxed. The first time, that stores each
piece's source (a file that is one piece as it is, a longer file's video cut into a file
per piece) and each file's audio, copied out, under `videos/<id>/reencode/<count>/` with
the plan (chalicelib.media.reencode.plan_parts), queues one REENCODE_PART message per
piece and one REENCODE_AUDIO, and raises HandedOff: the join ends there without a verdict,
its lease still held, and the steps renew that lease while they run (so the video stays
`processing`, and no other join starts on the same chunks). Each step stores its output
and lists what is stored: the step that finds every output there ends the join's lease and
asks for an urgent join. That join remuxes the files again (a stream copy), finds every
output stored, joins them by stream copy (chalicelib.media.reencode.join) and publishes the
result as any join does: verified, with its poster, and the steps' files removed with the
sources once the recording is finished.

- A step that fails on S3 comes back alone (its message is retried); a piece that cannot be
  encoded fails the join with a reason that names its file (and where in the file).
- Bounded per job: a piece longer than MAX_REENCODE_SECONDS (keyframes that far apart)
  fails the join at once, saying so, before anything is stored.
- A step of a join that is over (the video got more chunks, or the join's lease lapsed and
  another join took over) does nothing.
- Steps that all vanish (killed, their messages lost): the lease lapses after
  JOIN_STALL_SECONDS, the next append, status poll or GET asks for a join, and that join
  finds the stored plan and queues only the steps whose output is missing. After
  MAX_JOIN_ATTEMPTS such takeovers the video fails, as a join that never finishes does.
- A recording without video (audio files that differ) is re-encoded in the join itself: its
  one audio pass is the whole work, and audio encodes at tens of times real time.
"""
import enum
import os
import time
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib.errors import HandedOff, NotPlayable
from chalicelib.media import reencode as media_reencode
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.media.probe import MediaInfo
from chalicelib.models import Video
from chalicelib.ports import REENCODE_AUDIO, REENCODE_PART, Backend, JoinRequest
from chalicelib.settings import Settings
from chalicelib.steps import AUDIO, PLAN, StepJob, outputs, piece_name

logger = Logger(child=True)

WORK = "reencode"


def source_name(index: int) -> str:
    """The source of piece `index`: the remuxed file (its container as it came) when the
    file is one piece, else the piece's video cut from it. Named `file-` as when every
    piece was a file: a plan stored then still finds its sources."""
    return f"file-{index:05d}"


def audio_source_name(index: int) -> str:
    return f"audio-source-{index:05d}.mka"


def _outputs(plan: media_reencode.Plan) -> set[str]:
    return outputs([piece.index for piece in plan.pieces], plan.audio)


class ReencodeOutcome(str, enum.Enum):
    OVER = "the join it worked for is over"
    STEP_DONE = "step done: others still running"
    JOIN_ASKED = "step done: every file is encoded, the join is asked for again"
    FAILED = "failed"


class Reencodes(StepJob):
    job = "re-encode"

    def __init__(self, settings: Settings, backend: Backend, ffmpeg: Ffmpeg,
                 clock: Callable[[], float] = time.time):
        super().__init__(settings, backend, ffmpeg, WORK, clock)

    # --- in the join ----------------------------------------------------------------------

    def reencode(self, video: Video, files: list[tuple[str, MediaInfo]], output: str) -> None:
        """Write the re-encode of the video's files to `output` when its steps have made
        every piece; else store what they need, queue them and raise HandedOff."""
        infos = [info for _, info in files]
        layout = media_reencode.plan_parts(infos)  # the files' places, before any cut
        if not layout.video:
            media_reencode.reencode(self.ffmpeg, files, output)
            return
        video_id, chunks = video.video_id, video.chunk_count
        stored = self.files.names(video_id, chunks)
        work = os.path.dirname(output)
        plan = (media_reencode.Plan.from_json(self.files.read_plan(video_id, chunks, work))
                if PLAN in stored else None)
        # The stored plan's cuts stand for the same files: their packets are not read again.
        if plan is not None and plan.same_files(layout):
            if _outputs(plan) <= stored:  # every step is done: join what they made
                pieces = self.files.get_many(video_id, chunks, [piece_name(piece.index) for piece in plan.pieces],
                                             work)
                audio = self.files.get(video_id, chunks, AUDIO, work) if plan.audio else None
                media_reencode.join(self.ffmpeg, pieces, audio, output)
                return
        else:  # the first time (or a plan of other files: stored again, from the start)
            piece_seconds = self.settings.rendition_piece_seconds
            packets = media_reencode.file_packets(self.ffmpeg, files, piece_seconds)
            plan = media_reencode.plan_parts(infos, packets, piece_seconds,
                                             self.settings.max_reencode_seconds)
            self.files.delete(video_id, chunks)
            self._store_sources(video_id, chunks, files, plan, work)
            stored = set()
        steps = [JoinRequest(video_id, False, REENCODE_PART, chunks, piece.index, video.join_started_at)
                 for piece in plan.pieces if piece_name(piece.index) not in stored]
        if plan.audio and AUDIO not in stored:
            steps.append(JoinRequest(video_id, False, REENCODE_AUDIO, chunks, None, video.join_started_at))
        self.queue.schedule_steps(steps)
        logger.info("re-encode handed to its steps", extra={"video_id": video_id, "chunks": chunks,
                                                             "files": len(plan.parts),
                                                             "pieces": len(plan.pieces), "queued": len(steps)})
        raise HandedOff(f"{len(steps)} re-encode steps queued")

    def _store_sources(self, video_id: int, chunks: int, files: list[tuple[str, MediaInfo]],
                       plan: media_reencode.Plan, work: str) -> None:
        uploads = []
        for (path, _), part in zip(files, plan.parts):
            sources = media_reencode.split_file(self.ffmpeg, path, plan, part.index, work)
            uploads += [(source, source_name(piece.index))
                        for source, piece in zip(sources, plan.pieces_of(part.index))]
            if part.audio:  # the audio step reads each file's audio alone, not the files
                audio = os.path.join(work, audio_source_name(part.index))
                self.ffmpeg.copy_audio(path, audio)
                uploads.append((audio, audio_source_name(part.index)))
        self.files.put_plan(video_id, chunks, uploads, plan.to_json(), work)

    # --- the steps ------------------------------------------------------------------------

    def run(self, request: JoinRequest) -> ReencodeOutcome:
        """Encode one piece (REENCODE_PART) or the audio of all the files (REENCODE_AUDIO)
        for the join that started at request.lease, if it is still on."""
        video_id, chunks, lease = request.video_id, request.chunks, request.lease
        video = self.catalog.get(video_id)
        if video is None or video.joining_chunks != chunks or video.join_started_at != lease:
            return ReencodeOutcome.OVER
        what = f"piece {request.piece + 1}" if request.kind == REENCODE_PART else "the audio"

        def encode(work: str) -> media_reencode.Plan:
            nonlocal what
            plan = media_reencode.Plan.from_json(self.files.read_plan(video_id, chunks, work))
            if request.kind == REENCODE_PART:
                if not 0 <= request.piece < len(plan.pieces):
                    raise NotPlayable(f"not in the plan ({len(plan.pieces)} pieces)")
                what = plan.describe(request.piece)  # its file, and where in it
                self._encode_part(video_id, chunks, plan, request.piece, work)
            else:
                self._encode_audio(video_id, chunks, plan, work)
            return plan

        renew = lambda: self.catalog.renew_join_lease(video_id, lease, self.clock())  # noqa: E731
        plan, reason = self.attempt(video_id, renew, encode)
        if reason is not None:
            reason = f"{what}: {reason}"
            self.catalog.fail_join(video_id, chunks, reason)
            self.files.delete(video_id, chunks)
            logger.info("join failed", extra={"video_id": video_id, "reason": reason})
            return ReencodeOutcome.FAILED
        if not _outputs(plan) <= self.files.names(video_id, chunks):
            return ReencodeOutcome.STEP_DONE
        # The last to finish (two at once may both get here: the second join finds the
        # first's result). The join's lease is ended only if it is still this join's.
        if self.catalog.renew_join_lease(video_id, lease, self.clock()):
            self.catalog.end_join(video_id)
        self.queue.schedule_join(video_id, urgent=True)
        return ReencodeOutcome.JOIN_ASKED

    def _encode_part(self, video_id: int, chunks: int, plan: media_reencode.Plan, index: int,
                     work: str) -> None:
        piece = plan.pieces[index]
        has_video = plan.parts[piece.file].video
        source = self.files.get(video_id, chunks, source_name(index), work) if has_video else None
        out = os.path.join(work, piece_name(index))
        media_reencode.encode_part(self.ffmpeg, source, plan, piece, out)
        self.files.put(video_id, chunks, out, piece_name(index))

    def _encode_audio(self, video_id: int, chunks: int, plan: media_reencode.Plan, work: str) -> None:
        sources = [self.files.get(video_id, chunks, audio_source_name(part.index), work) if part.audio else None
                   for part in plan.parts]
        out = os.path.join(work, AUDIO)
        media_reencode.encode_audio(self.ffmpeg, sources, plan, out)
        self.files.put(video_id, chunks, out, AUDIO)
