"""The API's use cases: create a video, append a chunk, play it back, report its status.

Knows nothing of HTTP: it takes ids, tokens and bytes, returns plain results and raises the
errors of `chalicelib.errors`; `chalicelib.responses` shapes the results into JSON.
"""
import re
import time
from dataclasses import dataclass
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib import tokens
from chalicelib.errors import (
    ConditionFailed,
    InvalidVideoId,
    NoChunks,
    NotPlayable,
    StorageUnavailable,
    VideoNotFound,
)
from chalicelib.models import Status, Video
from chalicelib.ports import Backend
from chalicelib.settings import Settings

logger = Logger(child=True)

# An urgent join starts within seconds of its request; one not started after this long was
# lost (a message dropped, a worker gone), and the next GET asks again. A duplicate is
# harmless: a join of chunks already joined does nothing.
URGENT_JOIN_LOST_SECONDS = 30

_VIDEO_ID = re.compile(r"[1-9][0-9]{0,14}")  # ids are counted from 1; 15 digits is plenty


def parse_video_id(raw: str) -> int:
    if not _VIDEO_ID.fullmatch(raw or ""):
        raise InvalidVideoId(f"{raw!r} is not a video id: ids are whole numbers from 1 up")
    return int(raw)


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


@dataclass(frozen=True)
class Appended:
    video_id: int
    chunk_index: int
    chunk_bytes: int


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
        token = tokens.new_token()
        video = self.catalog.create(tokens.token_hash(token), self.clock())
        return Created(self._view(video), token)

    def append(self, video_id: int, token: str | None, chunk: bytes) -> Appended:
        """Store one chunk: one conditional DynamoDB write, one S3 write; never reads
        earlier chunks, so its cost does not grow with the video."""
        expected_hash = self._required_token_hash(token)
        now = self.clock()
        try:
            index, join_requested_at = self.catalog.claim_chunk(
                video_id, len(chunk), expected_hash, now)
        except ConditionFailed:
            self._authorized(video_id, token)  # raises the reason: unknown video or wrong token
            raise
        try:
            self.store.put_chunk(video_id, index, chunk)
        except Exception:
            self.catalog.release_chunk(video_id, index, len(chunk))
            raise
        if join_requested_at is None:
            self._enqueue_join(video_id, self.settings.join_delay_seconds)
        elif now - join_requested_at >= self.settings.join_stall_seconds:
            self._schedule_join(video_id, now, self.settings.join_delay_seconds)
        return Appended(video_id=video_id, chunk_index=index, chunk_bytes=len(chunk))

    def playback(self, video_id: int, token: str | None) -> Playback:
        video = self._authorized(video_id, token)
        now = self.clock()
        status = video.status(now, self.settings.join_stall_seconds)
        if status is Status.EMPTY:
            raise NoChunks("no chunk was appended to this video yet")
        if status is Status.FAILED:
            raise NotPlayable(f"the chunks do not make a playable video: {video.error}")
        if status is Status.READY:
            return Playback(self.store.presigned_get(video.compiled_key), video.media.content_type)
        if not video.joining_now(now, self.settings.join_stall_seconds) and (
                video.join_urgent_at is None or now - video.join_urgent_at >= URGENT_JOIN_LOST_SECONDS):
            self._schedule_join(video_id, now, delay_seconds=0, urgent=True,
                                stall_seconds=URGENT_JOIN_LOST_SECONDS)
        return Playback(None)

    def status(self, video_id: int, token: str | None) -> VideoView:
        return self._view(self._authorized(video_id, token))

    def _view(self, video: Video) -> VideoView:
        status = video.status(self.clock(), self.settings.join_stall_seconds)
        poster_url = None
        if video.compiled_chunks is not None and video.poster_key:
            poster_url = self.store.presigned_get(video.poster_key)
        return VideoView(video, status, poster_url)

    def _schedule_join(self, video_id: int, now: float, delay_seconds: int,
                       urgent: bool = False, stall_seconds: int | None = None) -> None:
        stall_seconds = stall_seconds or self.settings.join_stall_seconds
        if self.catalog.request_join(video_id, now, stall_seconds, urgent):
            self._enqueue_join(video_id, delay_seconds, urgent)

    def _enqueue_join(self, video_id: int, delay_seconds: int, urgent: bool = False) -> None:
        try:
            self.queue.schedule_join(video_id, delay_seconds, urgent)
        except StorageUnavailable:
            # The chunk is stored; the join request stays recorded and a later append or
            # GET schedules it again once it counts as stalled.
            logger.exception("could not schedule a join", extra={"video_id": video_id})

    def _required_token_hash(self, token: str | None) -> str | None:
        return tokens.required_hash(token) if self.settings.tokens_required else None

    def _authorized(self, video_id: int, token: str | None) -> Video:
        expected_hash = self._required_token_hash(token)  # a missing token is a 401 first
        video = self.catalog.get(video_id)
        if video is None:
            raise VideoNotFound(f"there is no video {video_id}")
        if expected_hash is not None:
            tokens.check_token(token, video.token_hash)
        return video

