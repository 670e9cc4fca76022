"""The video catalog in memory: the DynamoDB catalog's twin for fast tests. Each write
applies atomically or not at all, as a conditional UpdateItem does
(tests/integration/test_contracts.py holds both to one contract).

Ids are handed out in blocks of `id_block_size`, as the DynamoDB catalog reserves them from
its counter item (see chalicelib/adapters/dynamodb.py): `another_instance()` is a second
process's catalog over the same records and counter, with a block of its own."""
import dataclasses
import threading
from typing import Callable

from chalicelib.adapters.id_blocks import IdBlocks
from chalicelib.errors import ConditionFailed
from chalicelib.models import MediaSummary, Rendition, RenditionState, Video


@dataclasses.dataclass
class _Counter:
    last_id: int = 0  # the highest id reserved, as the counter item holds it


class MemoryCatalog:
    def __init__(self, id_block_size: int = 1):
        self._videos: dict[int, Video] = {}
        self._counter = _Counter()
        self._lock = threading.Lock()  # one write at a time, as DynamoDB applies each atomically
        self._ids = IdBlocks(id_block_size, self._reserve_ids)

    def another_instance(self) -> "MemoryCatalog":
        """A catalog over the same records and counter, as another process (another Lambda
        instance) has: it reserves blocks of its own."""
        twin = MemoryCatalog(self._ids.size)
        twin._videos, twin._counter, twin._lock = self._videos, self._counter, self._lock
        return twin

    @property
    def last_reserved_id(self) -> int:
        """The counter: the highest id any instance reserved."""
        with self._lock:
            return self._counter.last_id

    def _change(self, video_id: int, applies: Callable[[Video], bool] = lambda video: True,
                **changes) -> Video:
        """Replace fields of a record when `applies` holds; returns the record before."""
        video = self._videos.get(video_id)
        if video is None or not applies(video):
            raise ConditionFailed(video_id, video)
        self._videos[video_id] = dataclasses.replace(video, **changes)
        return video

    def _reserve_ids(self, count: int) -> int:
        with self._lock:  # atomic, as the counter item's ADD
            self._counter.last_id += count
            return self._counter.last_id

    def create(self, token_hash: str, playback_token_hash: str, now: float) -> Video:
        video_id = self._ids.next_id()
        with self._lock:
            video = Video(video_id, token_hash, chunk_count=0, byte_count=0,
                          created_at=now, updated_at=now, playback_token_hash=playback_token_hash)
            self._videos[video.video_id] = video
            return video

    def set_playback_token(self, video_id: int, playback_token_hash: str) -> None:
        with self._lock:
            self._change(video_id, playback_token_hash=playback_token_hash)

    def get(self, video_id: int) -> Video | None:
        with self._lock:
            return self._videos.get(video_id)

    def claim_chunk(self, video_id: int, size: int, digest: str, token_hash: str | None,
                    now: float, first: int | None = None) -> Video:
        def claimable(video: Video) -> bool:
            if token_hash not in (None, video.token_hash) or video.finalized_at is not None:
                return False
            if first is not None:
                return video.byte_count == first
            return (video.last_chunk_digest, video.last_chunk_size) != (digest, size)

        with self._lock:
            video = self._videos.get(video_id)
            if video is None or not claimable(video):
                raise ConditionFailed(video_id, video)
            return self._change(video_id, chunk_count=video.chunk_count + 1,
                                byte_count=video.byte_count + size, updated_at=now,
                                last_chunk_size=size, last_chunk_digest=digest,
                                join_requested_at=video.join_requested_at or now)

    def unclaim_chunk(self, video_id: int, before: Video, digest: str) -> bool:
        def unchanged(video: Video) -> bool:
            return video.chunk_count == before.chunk_count + 1 and video.last_chunk_digest == digest

        with self._lock:
            try:
                self._change(video_id, unchanged, chunk_count=before.chunk_count,
                             byte_count=before.byte_count, updated_at=before.updated_at,
                             last_chunk_size=before.last_chunk_size,
                             last_chunk_digest=before.last_chunk_digest,
                             join_requested_at=before.join_requested_at)
            except ConditionFailed:
                return False
            return True

    def finalize(self, video_id: int, now: float) -> Video:
        with self._lock:
            video = self._videos.get(video_id)
            self._change(video_id, finalized_at=video.finalized_at if video and video.finalized_at else now)
            return self._videos[video_id]

    def release_chunk(self, video_id: int, index: int, size: int) -> None:
        with self._lock:
            video = self._videos.get(video_id)
            if video is None:
                raise ConditionFailed(video_id)
            self._change(video_id, lost_chunks=video.lost_chunks | {index},
                         byte_count=video.byte_count - size)

    def request_join(self, video_id: int, now: float, stall_seconds: int,
                     urgent: bool = False) -> bool:
        field = "join_urgent_at" if urgent else "join_requested_at"

        def stalled(video: Video) -> bool:
            pending = getattr(video, field)
            return pending is None or pending <= now - stall_seconds

        with self._lock:
            try:
                self._change(video_id, stalled, **{field: now})
            except ConditionFailed:
                return False
            return True

    def renew_join_request(self, video_id: int, now: float) -> None:
        with self._lock:
            self._change(video_id, join_requested_at=now)

    def start_join(self, video_id: int, now: float, attempt: int = 1) -> Video:
        with self._lock:
            video = self._videos.get(video_id)
            self._change(video_id, join_started_at=now, join_alive_at=now,
                         joining_chunks=video.chunk_count if video else None, join_attempt=attempt,
                         join_requested_at=None, join_urgent_at=None)
            return self._videos[video_id]

    def renew_join_lease(self, video_id: int, started_at: float, now: float) -> bool:
        with self._lock:
            try:
                self._change(video_id, lambda video: video.join_started_at == started_at,
                             join_alive_at=now)
            except ConditionFailed:
                return False
            return True

    def finish_join(self, video_id: int, chunk_count: int, compiled_key: str,
                    poster_key: str | None, media: MediaSummary) -> list[str]:
        with self._lock:
            old = self._change(video_id, _older_than(chunk_count), compiled_chunks=chunk_count,
                               compiled_key=compiled_key, poster_key=poster_key, media=media,
                               join_started_at=None, join_alive_at=None, joining_chunks=None,
                               failed_chunks=None, error=None, rendition=None)
            rendition_key = old.rendition.key if old.rendition else None
            return [key for key in (old.compiled_key, old.poster_key, rendition_key)
                    if key and key not in (compiled_key, poster_key)]

    def request_rendition(self, video_id: int, chunk_count: int, now: float,
                          stall_seconds: int) -> bool:
        def wanted(video: Video) -> bool:
            current = video.rendition
            return video.compiled_chunks == chunk_count and (
                current is None or current.chunks < chunk_count
                or (current.chunks == chunk_count and current.state is RenditionState.PENDING
                    and (current.requested_at or 0) <= now - stall_seconds))

        with self._lock:
            try:
                self._change(video_id, wanted, rendition=Rendition(
                    chunk_count, RenditionState.PENDING, requested_at=now))
            except ConditionFailed:
                return False
            return True

    def renew_rendition(self, video_id: int, chunk_count: int, now: float) -> bool:
        def pending(video: Video) -> bool:
            current = video.rendition
            return (current is not None and current.chunks == chunk_count
                    and current.state is RenditionState.PENDING)

        with self._lock:
            try:
                old = self._change(video_id, pending)
            except ConditionFailed:
                return False
            self._videos[video_id] = dataclasses.replace(
                old, rendition=dataclasses.replace(old.rendition, requested_at=now))
            return True

    def finish_rendition(self, video_id: int, rendition: Rendition) -> list[str]:
        def current(video: Video) -> bool:
            return video.compiled_chunks == rendition.chunks and (
                video.rendition is None or video.rendition.chunks <= rendition.chunks)

        with self._lock:
            old = self._change(video_id, current, rendition=rendition)
            key = old.rendition.key if old.rendition else None
            return [key] if key and key != rendition.key else []

    def fail_join(self, video_id: int, chunk_count: int, reason: str) -> None:
        with self._lock:
            self._change(video_id, _older_than(chunk_count), failed_chunks=chunk_count,
                         error=reason, join_started_at=None, join_alive_at=None, joining_chunks=None)

    def end_join(self, video_id: int) -> None:
        with self._lock:
            self._change(video_id, join_started_at=None, join_alive_at=None, joining_chunks=None)

    def commit_segment(self, video_id: int, segment_count: int, segmented_bytes: int) -> None:
        def next_in_line(video: Video) -> bool:
            return video.segment_count == segment_count - 1 and video.segments_off is None

        with self._lock:
            self._change(video_id, next_in_line, segment_count=segment_count,
                         segmented_bytes=segmented_bytes)

    def stop_segments(self, video_id: int, reason: str) -> None:
        with self._lock:
            self._change(video_id, segments_off=reason)

    def delete(self, video_id: int, updated_before: float | None = None) -> None:
        with self._lock:
            video = self._videos.get(video_id)
            if video is None or (updated_before is not None and not _abandoned(video, updated_before)):
                raise ConditionFailed(video_id, video)
            del self._videos[video_id]

    def abandoned(self, updated_before: float, limit: int = 100) -> list[int]:
        with self._lock:
            return sorted(i for i, video in self._videos.items()
                          if _abandoned(video, updated_before))[:limit]


def _abandoned(video: Video, updated_before: float) -> bool:
    return video.compiled_chunks is None and video.updated_at < updated_before


def _older_than(chunk_count: int) -> Callable[[Video], bool]:
    return lambda video: video.compiled_chunks is None or video.compiled_chunks < chunk_count
