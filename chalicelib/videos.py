"""The API's use cases: create a video, append a chunk, play it back, report its status.

Knows nothing of HTTP: it takes ids, tokens and bytes, returns plain results and raises the
errors of `chalicelib.errors`; `chalicelib.responses` shapes the results into JSON.
"""
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib import telemetry, tokens
from chalicelib.errors import (
    ChunkTooLarge,
    ConditionFailed,
    InvalidUpload,
    InvalidVideoId,
    NoChunks,
    NotPlayable,
    RangeConflict,
    RenditionUnavailable,
    StorageUnavailable,
    UnsupportedFormat,
    VideoFinalized,
    VideoNotFound,
    shown,
)
from chalicelib import renditions
from chalicelib.models import RenditionState, Status, Video
from chalicelib.ports import Backend
from chalicelib.settings import Settings
from chalicelib.uploads import ByteRange

logger = Logger(child=True)

# An urgent join starts within seconds of its request; one not started after this long was
# lost (a message dropped, a worker gone), and the next GET asks again. A duplicate is
# harmless: a join of chunks already joined does nothing.
URGENT_JOIN_LOST_SECONDS = 30

_VIDEO_ID = re.compile(r"[1-9][0-9]{0,14}")  # ids are counted from 1; 15 digits is plenty


def parse_video_id(raw: str) -> int:
    if not _VIDEO_ID.fullmatch(raw or ""):
        raise InvalidVideoId(f"{shown(raw)} is not a video id: ids are whole numbers from 1 up")
    return int(raw)


_PIECE_ID = re.compile(r"[0-9a-f]{32}")  # what start_piece hands out


def parse_piece_id(raw: str) -> str:
    if not _PIECE_ID.fullmatch(raw or ""):
        raise InvalidUpload(f"{shown(raw)} is not a piece id: start a piece with POST /videos/<id>/pieces")
    return raw


def parse_format(raw: str | None) -> str | None:
    """`?format=`: None (the original, as recorded) or `mp4` (the H.264/AAC rendition)."""
    if raw is None:
        return None
    if raw not in renditions.FORMATS:
        raise UnsupportedFormat(f"{shown(raw)} is not a format: ?format=mp4 (H.264/AAC), or no "
                                "?format for the video as recorded")
    return raw


@dataclass(frozen=True)
class VideoView:
    """A video as a client sees it now."""
    video: Video
    status: Status
    poster_url: str | None = None


@dataclass(frozen=True)
class Created:
    view: VideoView
    upload_token: str
    playback_token: str


@dataclass(frozen=True)
class Appended:
    video_id: int
    chunk_index: int
    chunk_bytes: int
    committed_bytes: int  # where the recording ends now: the next chunk's first byte
    retry: bool = False  # the chunk was committed already; nothing was stored twice


@dataclass(frozen=True)
class Piece:
    """Where to PUT a piece too large for a request body, and what is known of it."""
    piece_id: str
    upload_url: str
    first_byte: int  # where the recording ends now: where the piece will go
    max_bytes: int
    expires_in: int  # seconds the URL is good for


@dataclass(frozen=True)
class Playback:
    """Where the compiled video is, or None while it is being joined."""
    url: str | None
    content_type: str | None = None


class VideoService:
    def __init__(self, settings: Settings, backend: Backend,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.catalog = backend.catalog
        self.store = backend.store
        self.queue = backend.queue
        self.clock = clock

    def create(self) -> Created:
        upload, playback = tokens.new_token(), tokens.new_token()
        video = self.catalog.create(tokens.token_hash(upload), tokens.token_hash(playback),
                                    self.clock())
        return Created(self._view(video), upload, playback)

    def delete(self, video_id: int, token: str | None) -> None:
        """Every object of the video, its record, then whatever a join still running wrote
        meanwhile: nothing of it is left. Objects go first so that a delete that fails
        half-way keeps the record, and the client's retry (which needs it, for the token)
        finishes the job; once the record is gone a running join cannot bring it back (the
        catalog's writes need it)."""
        self._authorized(video_id, token)
        self.store.delete_video(video_id)
        try:
            self.catalog.delete(video_id)
        except ConditionFailed:
            raise VideoNotFound(f"there is no video {video_id}") from None
        self.store.delete_video(video_id)

    def expire_abandoned(self) -> list[int]:
        """Remove recordings that were never joined and took no chunk for
        EXPIRE_AFTER_SECONDS (run from a schedule); the ids removed."""
        cutoff = self.clock() - self.settings.expire_after_seconds
        removed = []
        for video_id in self.catalog.abandoned(cutoff):
            try:
                self.catalog.delete(video_id, updated_before=cutoff)  # unless a chunk just came
            except ConditionFailed:
                continue
            self.store.delete_video(video_id)
            removed.append(video_id)
        return removed

    def new_playback_token(self, video_id: int, token: str | None) -> str:
        """Replace the playback token (a player link leaked, or is to stop working)."""
        self._authorized(video_id, token)
        playback = tokens.new_token()
        self.catalog.set_playback_token(video_id, tokens.token_hash(playback))
        return playback

    def append(self, video_id: int, token: str | None, chunk: bytes,
               where: ByteRange | None = None) -> Appended:
        """Store one chunk exactly once: one conditional DynamoDB write, one S3 write; never
        reads earlier chunks, so its cost does not grow with the video.

        With `where` (Content-Range) the chunk must start where the recording ends; without,
        it goes at the end. Either way the chunk committed last, sent again (a retry after a
        lost answer), is answered as before and not stored twice."""
        digest = hashlib.sha256(chunk).hexdigest()
        return self._commit(video_id, token, len(chunk), digest, where,
                            lambda index: self.store.put_chunk(video_id, index, chunk))

    def start_piece(self, video_id: int, token: str | None) -> Piece:
        """A piece too large for a request body: the client PUTs it to S3 itself, at a
        presigned URL, then commits it (commit_piece) as the next chunk."""
        video = self._authorized(video_id, token)
        piece_id = secrets.token_hex(16)
        seconds = self.settings.presigned_url_seconds
        return Piece(piece_id, self.store.piece_upload_url(video_id, piece_id, seconds),
                     video.committed_bytes, self.settings.max_piece_bytes, seconds)

    def commit_piece(self, video_id: int, token: str | None, piece_id: str,
                     where: ByteRange | None = None) -> Appended:
        """The uploaded piece, as the next chunk, under the rules of append: committing the
        same piece again is answered as before."""
        video = self._authorized(video_id, token)
        digest = f"piece:{piece_id}"
        size = self.store.piece_size(video_id, piece_id)
        if size is None:
            if video.last_chunk_digest == digest:  # committed, and moved into place already
                return Appended(video_id, video.chunk_count - 1, video.last_chunk_size,
                                video.committed_bytes, retry=True)
            raise InvalidUpload(f"no piece {shown(piece_id)} was uploaded to this video: "
                                "PUT it to its upload_url first")
        if size > self.settings.max_piece_bytes:
            self.store.delete_piece(video_id, piece_id)
            raise ChunkTooLarge(f"a piece may be at most {self.settings.max_piece_bytes} bytes",
                                limit_bytes=self.settings.max_piece_bytes)
        return self._commit(video_id, token, size, digest, where,
                            lambda index: self.store.commit_piece(video_id, piece_id, index))

    def _commit(self, video_id: int, token: str | None, size: int, digest: str,
                where: ByteRange | None, write: Callable[[int], None]) -> Appended:
        """Claim the next chunk index for `size` bytes, then write them there (`write`);
        undo the claim when the write fails."""
        expected_hash = self._required_token_hash(token)
        if where is not None and where.size != size:
            raise self._conflict(self._authorized(video_id, token),
                                 f"the body holds {size} bytes but Content-Range names {where.size}")
        now = self.clock()
        try:
            before = self.catalog.claim_chunk(video_id, size, digest, expected_hash, now,
                                              first=where.first if where else None)
        except ConditionFailed as failed:
            current = self._found(video_id, token, failed.current)
            if current.is_retry_of_last_chunk(size, digest, where.first if where else None):
                write(current.chunk_count - 1)  # again: the first attempt's write may have failed
                return Appended(video_id, current.chunk_count - 1, size, current.committed_bytes,
                                retry=True)
            if current.finalized_at is not None:
                raise VideoFinalized("this video is finalized: it takes no more chunks",
                                     committed_bytes=current.committed_bytes)
            raise self._conflict(current, f"the chunk starts at byte {where.first}")
        index = before.chunk_count
        try:
            write(index)
        except StorageUnavailable:
            if not self.catalog.unclaim_chunk(video_id, before, digest):
                self.catalog.release_chunk(video_id, index, size)  # skipped by joins
            raise
        telemetry.chunk_appended(size)  # committed now, whatever becomes of the join request
        self._after_append(video_id, before.join_requested_at, now, where)
        return Appended(video_id, index, size, before.committed_bytes + size)

    def finalize(self, video_id: int, token: str | None) -> VideoView:
        """No more chunks: the video is joined now, not after the recording pauses."""
        self._authorized(video_id, token)
        return self._view(self._finalize(video_id))

    def _finalize(self, video_id: int) -> Video:
        """The join is asked for now, even of a video joined already: it then only removes
        the chunks and segments, which a finished video no longer needs."""
        now = self.clock()
        video = self.catalog.finalize(video_id, now)
        self._schedule_join(video_id, now, delay_seconds=0, urgent=True,
                            stall_seconds=URGENT_JOIN_LOST_SECONDS)
        return video

    def _after_append(self, video_id: int, join_requested_at: float | None, now: float,
                      where: ByteRange | None) -> None:
        if where is not None and where.total == where.last + 1:
            self._finalize(video_id)  # the last byte of a recording of known length
        elif join_requested_at is None:
            self._enqueue_join(video_id, self.settings.join_delay_seconds)
        elif now - join_requested_at >= self._request_lost_after:
            self._schedule_join(video_id, now, self.settings.join_delay_seconds)

    @staticmethod
    def _conflict(video: Video, what: str) -> RangeConflict:
        return RangeConflict(f"{what}, and the recording ends at byte {video.committed_bytes}: "
                             "send the chunk that starts there", committed_bytes=video.committed_bytes)

    def playback(self, video_id: int, token: str | None, url_token: str | None = None,
                 download: bool = False, format: str | None = None) -> Playback:
        """Where to play the video (or, with `download`, to save it as a file). `token` from
        the Authorization header (either token), `url_token` from the URL (the playback
        token only). `format` "mp4": the H.264/AAC rendition (see _rendition)."""
        video = self._readable(video_id, token, url_token)
        now = self.clock()
        status = self._status_of(video, now)
        if status is Status.EMPTY:
            raise NoChunks("no chunk was appended to this video yet")
        if status is Status.FAILED:
            raise NotPlayable(f"the chunks do not make a playable video: {video.error}")
        if status is Status.READY and format == renditions.FORMAT_MP4:
            return self._rendition(video, now, download)
        if status is Status.READY:
            return Playback(self.store.presigned_get(video.compiled_key, download),
                            video.media.content_type)
        if not video.joining_now(now, self.settings.join_stall_seconds) and (
                video.join_urgent_at is None or now - video.join_urgent_at >= URGENT_JOIN_LOST_SECONDS):
            self._schedule_join(video_id, now, delay_seconds=0, urgent=True,
                                stall_seconds=URGENT_JOIN_LOST_SECONDS)
        return Playback(None)

    def _rendition(self, video: Video, now: float, download: bool) -> Playback:
        """The MP4 rendition of a ready video: its URL when made; the original when that
        already is H.264/AAC in MP4; None (202) while it is being made, asked for when none
        is pending (or the one pending was not heard of for JOIN_STALL_SECONDS);
        RenditionUnavailable when it failed, the video is too long, or it has no video."""
        current = video.current_rendition()
        if current is not None and current.state is RenditionState.READY:
            return Playback(self.store.presigned_get(current.key, download), renditions.CONTENT_TYPE)
        if current is not None and current.state in (RenditionState.FAILED, RenditionState.TOO_LONG):
            raise RenditionUnavailable(f"there is no MP4 rendition of this video: {current.error}",
                                       state=current.state.value)
        if not renditions.wanted(video.media):
            if renditions.plays_everywhere(video.media):
                return Playback(self.store.presigned_get(video.compiled_key, download),
                                video.media.content_type)
            raise RenditionUnavailable("an audio-only recording has no MP4 rendition: play the "
                                       "original (no ?format)", state="none")
        renditions.ask_for_rendition(self.catalog, self.queue, video, now,
                                     self.settings.join_stall_seconds)
        return Playback(None)

    def status(self, video_id: int, token: str | None, url_token: str | None = None) -> VideoView:
        """The video as it is. A video whose chunks no join accounts for, with no join
        pending (its worker died, its message was lost), gets one asked for: polling the
        status is enough to have a recording joined. `url_token` (the share page's ?token=)
        is the playback token only, as for playback."""
        video = self._readable(video_id, token, url_token)
        now = self.clock()
        if video.needs_join() and self._status_of(video, now) is Status.RECORDING:
            self._schedule_join(video_id, now, delay_seconds=0)
            video = self.catalog.get(video_id)
        return self._view(video)

    def _status_of(self, video: Video, now: float) -> Status:
        return video.status(now, self.settings.join_stall_seconds, self.settings.join_delay_seconds)

    def _view(self, video: Video) -> VideoView:
        status = self._status_of(video, self.clock())
        poster_url = None
        if video.compiled_chunks is not None and video.poster_key:
            poster_url = self.store.presigned_get(video.poster_key)
        return VideoView(video, status, poster_url)

    def _schedule_join(self, video_id: int, now: float, delay_seconds: int,
                       urgent: bool = False, stall_seconds: int | None = None) -> None:
        """Ask for a join unless one of that kind was asked for less than stall_seconds ago
        (by default: a waiting join's renewal interval and the stall time)."""
        stall_seconds = stall_seconds or self._request_lost_after
        if self.catalog.request_join(video_id, now, stall_seconds, urgent):
            self._enqueue_join(video_id, delay_seconds, urgent)

    @property
    def _request_lost_after(self) -> int:
        # A waiting join renews its request every JOIN_DELAY_SECONDS while the recording
        # goes on; one not renewed for that and the stall time is lost.
        return self.settings.join_delay_seconds + self.settings.join_stall_seconds

    def _enqueue_join(self, video_id: int, delay_seconds: int, urgent: bool = False) -> None:
        try:
            self.queue.schedule_join(video_id, delay_seconds, urgent)
        except StorageUnavailable:
            # The chunk is stored; the join request stays recorded and a later append or
            # GET schedules it again once it counts as stalled.
            logger.exception("could not schedule a join", extra={"video_id": video_id})

    def _required_token_hash(self, token: str | None) -> str | None:
        return tokens.required_hash(token) if self.settings.tokens_required else None

    def _readable(self, video_id: int, token: str | None, url_token: str | None = None) -> Video:
        """The video, for a reader: its upload or playback token (see chalicelib.tokens)."""
        if not self.settings.tokens_required:
            return self._found(video_id, token, self.catalog.get(video_id))
        if token is None and url_token is None:
            tokens.present(None)  # a missing token is a 401 before anything else
        video = self.catalog.get(video_id)
        if video is None:
            raise VideoNotFound(f"there is no video {video_id}")
        tokens.check_reader(token, url_token, video.token_hash, video.playback_token_hash)
        return video

    def _authorized(self, video_id: int, token: str | None) -> Video:
        return self._found(video_id, token, self.catalog.get(video_id))

    def _found(self, video_id: int, token: str | None, video: Video | None) -> Video:
        """The video, if there is one and the token is its own (a missing token is a 401
        before anything else)."""
        expected_hash = self._required_token_hash(token)
        if video is None:
            raise VideoNotFound(f"there is no video {video_id}")
        if expected_hash is not None:
            tokens.check_token(token, video.token_hash)
        return video

