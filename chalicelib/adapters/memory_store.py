"""The object store in memory: the S3 store's twin for fast tests, keyed as
`chalicelib.adapters.keys` lays S3 out, with S3's 5 MiB part minimum and missing-key
answers (tests/integration/test_contracts.py holds both to one contract)."""
import threading
import time
import uuid
from typing import Callable

from chalicelib.adapters.keys import (
    chunk_key,
    compiled_key,
    download_name,
    draft_key,
    extension_key,
    fold_state_key,
    piece_key,
    rendition_key,
    segment_key,
    source_prefixes,
    video_prefix,
    work_prefix,
)
from chalicelib.errors import ChunkMissing, StorageUnavailable, UploadGone
from chalicelib.transfers import TransferCounter

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest multipart part (all but the last)


class MemoryStore:
    """Objects in a dict, keyed as the S3 store keys them. Counts what it moves as the S3
    store does (chalicelib.transfers): what a caller puts as written, what it gets back as
    read, what a copy or a commit moves inside the store as copied in S3."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, "MemoryComposition"] = {}  # open multipart uploads by id
        self.content_types: dict[str, str] = {}
        self._lock = threading.Lock()
        self.transfers = TransferCounter()

    def _put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self._store(key, body, content_type)
        self.transfers.count(written=len(body))

    def _store(self, key: str, body: bytes, content_type: str) -> None:
        with self._lock:
            self.objects[key] = bytes(body)
            self.content_types[key] = content_type

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            return self.objects.get(key)

    def _read(self, body: bytes) -> bytes:
        self.transfers.count(read=len(body))
        return body

    def put_chunk(self, video_id: int, index: int, body: bytes) -> None:
        self._put(chunk_key(video_id, index), body)

    def read_chunk(self, video_id: int, index: int, first_byte: int = 0,
                   max_bytes: int | None = None) -> bytes:
        body = self._get(chunk_key(video_id, index))
        if body is None:
            raise ChunkMissing(index)
        return self._read(body[first_byte:None if max_bytes is None else first_byte + max_bytes])

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
        if body is not None:
            self.transfers.count(copied_in_s3=len(body))

    def delete_piece(self, video_id: int, piece_id: str) -> None:
        self.delete(piece_key(video_id, piece_id))

    def put_segment(self, video_id: int, number: int, body: bytes) -> None:
        self._put(segment_key(video_id, number), body)

    def read_segment(self, video_id: int, number: int, first_byte: int = 0,
                     extended_to: int | None = None) -> bytes:
        return self._read(self._existing(segment_key(video_id, number, extended_to))[first_byte:])

    def extend_segment(self, video_id: int, number: int, size: int, extended_to: int,
                       body: bytes) -> None:
        segment = self._existing(segment_key(video_id, number))
        if len(segment) < MIN_PART_BYTES:
            raise StorageUnavailable("S3 refused the call (EntityTooSmall); retry")
        self._store(segment_key(video_id, number, extended_to), segment + body,
                    "application/octet-stream")
        self.transfers.count(written=len(body), copied_in_s3=len(segment))

    def delete_extended_segment(self, video_id: int, number: int, extended_to: int) -> None:
        self.delete(segment_key(video_id, number, extended_to))

    def put_extension(self, video_id: int, segment_count: int, state: bytes) -> None:
        self._put(extension_key(video_id, segment_count), state, "application/json")

    def read_extension(self, video_id: int, segment_count: int) -> bytes | None:
        body = self._get(extension_key(video_id, segment_count))
        return None if body is None else self._read(body)

    def put_fold_state(self, video_id: int, segment_count: int, state: bytes) -> None:
        self._put(fold_state_key(video_id, segment_count), state, "application/json")

    def read_fold_state(self, video_id: int, segment_count: int) -> bytes:
        return self._read(self._existing(fold_state_key(video_id, segment_count)))

    def compiled_key(self, video_id: int, chunk_count: int, extension: str) -> str:
        return compiled_key(video_id, chunk_count, extension)

    def upload_file(self, path: str, key: str, content_type: str) -> None:
        with open(path, "rb") as source:
            self._put(key, source.read(), content_type)

    def start_composition(self, key: str, content_type: str) -> "MemoryComposition":
        return MemoryComposition(self, key, content_type)

    def resume_composition(self, key: str, upload_id: str,
                           list_parts: bool = False) -> "MemoryComposition | None":
        with self._lock:
            upload = self.uploads.get(upload_id)
        if upload is not None and upload.key == key:
            return upload
        if list_parts:
            return None
        gone = MemoryComposition(self, key, "application/octet-stream")
        gone.abort()  # S3 says so only when a part is added: wait() raises UploadGone
        return gone

    def draft_key(self, video_id: int, segment_count: int, extension: str) -> str:
        return draft_key(video_id, segment_count, extension)

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)
            self.content_types.pop(key, None)

    def delete_video(self, video_id: int) -> None:
        with self._lock:
            uploads = [u for u in self.uploads.values() if u.key.startswith(video_prefix(video_id))]
        for upload in uploads:
            upload.abort()
        self._delete_under(video_prefix(video_id))

    def delete_sources(self, video_id: int) -> None:
        for prefix in source_prefixes(video_id):
            self._delete_under(prefix)

    def _delete_under(self, prefix: str) -> None:
        with self._lock:
            for key in [key for key in self.objects if key.startswith(prefix)]:
                del self.objects[key]
                self.content_types.pop(key, None)

    def rendition_key(self, video_id: int, chunk_count: int) -> str:
        return rendition_key(video_id, chunk_count)

    def download_file(self, key: str, path: str) -> None:
        body = self._existing(key)
        with open(path, "wb") as target:
            target.write(body)
        self.transfers.count(read=len(body))

    def read(self, key: str, first_byte: int, max_bytes: int) -> bytes:
        return self._read(self._existing(key)[first_byte:first_byte + max_bytes])

    def work_key(self, video_id: int, job: str, chunk_count: int, name: str) -> str:
        return work_prefix(video_id, job, chunk_count) + name

    def work_files(self, video_id: int, job: str, chunk_count: int) -> set[str]:
        prefix = work_prefix(video_id, job, chunk_count)
        with self._lock:
            return {key[len(prefix):] for key in self.objects if key.startswith(prefix)}

    def delete_work(self, video_id: int, job: str, chunk_count: int) -> None:
        self._delete_under(work_prefix(video_id, job, chunk_count))

    def presigned_get(self, key: str, download: bool = False) -> str:
        attachment = f"&attachment={download_name(key)}" if download else ""
        return f"memory://videos/{key}?expires={int(time.time()) + 3600}{attachment}"

    def _existing(self, key: str) -> bytes:
        body = self._get(key)
        if body is None:
            raise StorageUnavailable("S3 refused the call (NoSuchKey); retry")
        return body


class MemoryComposition:
    """A multipart upload: open until completed or aborted, and found again by its id."""

    def __init__(self, store: MemoryStore, key: str, content_type: str):
        self.key = key
        self.upload_id = uuid.uuid4().hex
        self._store = store
        self._content_type = content_type
        self._parts: dict[int, Callable[[], bytes]] = {}
        self._held: dict[int, bytes] = {}  # parts the store holds already (wait())
        self._open = True
        with store._lock:
            store.uploads[self.upload_id] = self

    @property
    def held(self) -> set[int]:
        return set(self._held)

    def send(self, number: int, body: bytes) -> None:
        self._held.pop(number, None)
        self._parts[number] = lambda: body
        self._store.transfers.count(written=len(body))

    def copy_segment(self, number: int, video_id: int, segment: int, size: int,
                     extended_to: int | None = None) -> None:
        # Read when the parts are waited for or completed, as S3 copies whatever the source
        # holds when it copies; copied inside the store, so counted as S3's copy (of what it
        # holds), not as a read.
        def copy() -> bytes:
            body = self._store._existing(segment_key(video_id, segment, extended_to))
            self._store.transfers.count(copied_in_s3=len(body))
            return body
        self._held.pop(number, None)
        self._parts[number] = copy

    def wait(self) -> None:
        parts, self._parts = self._parts, {}
        if not self._open:
            raise UploadGone(self.key)
        self._held.update((number, part()) for number, part in parts.items())

    def complete(self) -> None:
        try:
            if not self._open:
                raise StorageUnavailable("S3 refused the call (NoSuchUpload); retry")
            bodies = dict(self._held)
            bodies.update((number, part()) for number, part in self._parts.items())
            parts = [bodies[n] for n in sorted(bodies)]
            if any(len(part) < MIN_PART_BYTES for part in parts[:-1]):
                raise StorageUnavailable("S3 refused the call (EntityTooSmall); retry")
            # The parts were counted as they were sent or copied: the assembly moves nothing.
            self._store._store(self.key, b"".join(parts), self._content_type)
        except BaseException:
            self.abort()
            raise
        self._close()

    def abort(self) -> None:
        self._close()

    def _close(self) -> None:
        self._open = False
        self._parts.clear()
        self._held.clear()
        with self._store._lock:
            self._store.uploads.pop(self.upload_id, None)

