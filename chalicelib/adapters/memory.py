"""In-memory twins of the catalog, the store and the queue, for tests that need speed more
than AWS. They keep the semantics the service relies on (conditional writes that apply
atomically or not at all, ChunkMissing, S3's 5 MiB part minimum, delayed messages), and
tests/integration/test_contracts.py holds them to the same contract as the AWS adapters."""
import dataclasses
import threading
import time
from typing import Callable

from chalicelib.adapters.keys import (
    chunk_key,
    compiled_key,
    fold_state_key,
    piece_key,
    segment_key,
    source_prefixes,
    video_prefix,
)
from chalicelib.errors import ChunkMissing, ConditionFailed, StorageUnavailable
from chalicelib.models import MediaSummary, Video
from chalicelib.ports import JoinRequest

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest multipart part (all but the last)


class MemoryCatalog:
    def __init__(self):
        self._videos: dict[int, Video] = {}
        self._last_id = 0
        self._lock = threading.Lock()  # one write at a time, as DynamoDB applies each atomically

    def _change(self, video_id: int, applies: Callable[[Video], bool] = lambda video: True,
                **changes) -> Video:
        """Replace fields of a record when `applies` holds; returns the record before."""
        video = self._videos.get(video_id)
        if video is None or not applies(video):
            raise ConditionFailed(video_id, video)
        self._videos[video_id] = dataclasses.replace(video, **changes)
        return video

    def create(self, token_hash: str, playback_token_hash: str, now: float) -> Video:
        with self._lock:
            self._last_id += 1
            video = Video(self._last_id, token_hash, chunk_count=0, byte_count=0,
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
                               failed_chunks=None, error=None)
            return [key for key in (old.compiled_key, old.poster_key)
                    if key and key not in (compiled_key, poster_key)]

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


class MemoryStore:
    """Objects in a dict, keyed as the S3 store keys them."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self._lock = threading.Lock()

    def _put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        with self._lock:
            self.objects[key] = bytes(body)
            self.content_types[key] = content_type

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            return self.objects.get(key)

    def put_chunk(self, video_id: int, index: int, body: bytes) -> None:
        self._put(chunk_key(video_id, index), body)

    def read_chunk(self, video_id: int, index: int) -> bytes:
        body = self._get(chunk_key(video_id, index))
        if body is None:
            raise ChunkMissing(index)
        return body

    def piece_upload_url(self, video_id: int, piece_id: str, expires_in: int) -> str:
        return f"memory://{piece_key(video_id, piece_id)}?expires={int(time.time()) + expires_in}"

    def piece_size(self, video_id: int, piece_id: str) -> int | None:
        body = self._get(piece_key(video_id, piece_id))
        return None if body is None else len(body)

    def commit_piece(self, video_id: int, piece_id: str, index: int) -> None:
        with self._lock:
            body = self.objects.pop(piece_key(video_id, piece_id), None)
            if body is not None:  # gone: moved by an earlier attempt of this commit
                self.objects[chunk_key(video_id, index)] = body

    def delete_piece(self, video_id: int, piece_id: str) -> None:
        self.delete(piece_key(video_id, piece_id))

    def put_segment(self, video_id: int, number: int, body: bytes) -> None:
        self._put(segment_key(video_id, number), body)

    def read_segment(self, video_id: int, number: int, first_byte: int = 0) -> bytes:
        return self._existing(segment_key(video_id, number))[first_byte:]

    def put_fold_state(self, video_id: int, segment_count: int, state: bytes) -> None:
        self._put(fold_state_key(video_id, segment_count), state, "application/json")

    def read_fold_state(self, video_id: int, segment_count: int) -> bytes:
        return self._existing(fold_state_key(video_id, segment_count))

    def compiled_key(self, video_id: int, chunk_count: int, extension: str) -> str:
        return compiled_key(video_id, chunk_count, extension)

    def upload_file(self, path: str, key: str, content_type: str) -> None:
        with open(path, "rb") as source:
            self._put(key, source.read(), content_type)

    def start_composition(self, key: str, content_type: str) -> "MemoryComposition":
        return MemoryComposition(self, key, content_type)

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)
            self.content_types.pop(key, None)

    def delete_video(self, video_id: int) -> None:
        self._delete_under(video_prefix(video_id))

    def delete_sources(self, video_id: int) -> None:
        for prefix in source_prefixes(video_id):
            self._delete_under(prefix)

    def _delete_under(self, prefix: str) -> None:
        with self._lock:
            for key in [key for key in self.objects if key.startswith(prefix)]:
                del self.objects[key]
                self.content_types.pop(key, None)

    def presigned_get(self, key: str) -> str:
        return f"memory://videos/{key}?expires={int(time.time()) + 3600}"

    def _existing(self, key: str) -> bytes:
        body = self._get(key)
        if body is None:
            raise StorageUnavailable("S3 refused the call (NoSuchKey); retry")
        return body


class MemoryComposition:
    def __init__(self, store: MemoryStore, key: str, content_type: str):
        self.key = key
        self._store = store
        self._content_type = content_type
        self._parts: dict[int, Callable[[], bytes]] = {}
        self._open = True

    def send(self, number: int, body: bytes) -> None:
        self._parts[number] = lambda: body

    def copy_segment(self, number: int, video_id: int, segment: int) -> None:
        # Read at completion, as S3 copies whatever the source holds when it copies.
        self._parts[number] = lambda: self._store.read_segment(video_id, segment)

    def complete(self) -> None:
        try:
            if not self._open:
                raise StorageUnavailable("S3 refused the call (NoSuchUpload); retry")
            numbers = sorted(self._parts)
            parts = [self._parts[n]() for n in numbers]
            if any(len(part) < MIN_PART_BYTES for part in parts[:-1]):
                raise StorageUnavailable("S3 refused the call (EntityTooSmall); retry")
            self._store._put(self.key, b"".join(parts), self._content_type)
        except BaseException:
            self.abort()
            raise
        self._open = False

    def abort(self) -> None:
        self._open = False
        self._parts.clear()


class MemoryQueue:
    """Join requests with their due time on a clock (time.time, or a test's)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._messages: list[tuple[float, int, JoinRequest]] = []
        self._sequence = 0
        self._lock = threading.Lock()

    def schedule_join(self, video_id: int, delay_seconds: int = 0, urgent: bool = False) -> None:
        with self._lock:
            self._sequence += 1
            due = self.clock() + min(delay_seconds, 900)
            self._messages.append((due, self._sequence, JoinRequest(video_id, urgent)))

    def receive(self, wait_seconds: int = 0) -> "MemoryDelivery | None":
        with self._lock:
            now = self.clock()
            due = sorted(m for m in self._messages if m[0] <= now)
            if not due:
                return None
            self._messages.remove(due[0])
            return MemoryDelivery(due[0][2])

    def waiting(self) -> tuple[int, int]:
        with self._lock:
            now = self.clock()
            visible = sum(1 for due, _, _ in self._messages if due <= now)
            return visible, len(self._messages) - visible


@dataclasses.dataclass
class MemoryDelivery:
    request: JoinRequest

    def acknowledge(self) -> None:
        pass  # taken off the queue when received: there is no visibility timeout here
