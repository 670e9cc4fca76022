"""Pieces too large for a request body: PUT to the store at a presigned URL, then committed
as the next chunk under the same exactly-once rules as an append."""
from urllib.parse import urlparse

import pytest

from chalicelib.errors import ChunkTooLarge, InvalidUpload, RangeConflict
from chalicelib.uploads import ByteRange
from tests.helpers import record


def uploaded(services, piece, body: bytes) -> None:
    """What the client's PUT to piece.upload_url does (the in-memory store's URL names the key)."""
    services.backend.store.objects[urlparse(piece.upload_url).netloc + urlparse(piece.upload_url).path] = body


def test_a_piece_is_committed_as_the_next_chunk_and_a_second_commit_is_a_retry(memory):
    video_id, token = record(memory, [b"head"])
    piece = memory.videos.start_piece(video_id, token)
    assert (piece.first_byte, piece.max_bytes) == (4, memory.settings.max_piece_bytes)
    assert f"videos/{video_id}/pieces/{piece.piece_id}" in piece.upload_url
    uploaded(memory, piece, b"x" * 1000)
    committed = memory.videos.commit_piece(video_id, token, piece.piece_id, ByteRange(4, 1003, None))
    assert (committed.chunk_index, committed.committed_bytes, committed.retry) == (1, 1004, False)
    assert memory.backend.store.read_chunk(video_id, 1) == b"x" * 1000
    assert not any("/pieces/" in key for key in memory.backend.store.objects)  # moved, not copied
    again = memory.videos.commit_piece(video_id, token, piece.piece_id)
    assert (again.chunk_index, again.committed_bytes, again.retry) == (1, 1004, True)
    assert memory.videos.append(video_id, token, b"tail").chunk_index == 2


def test_a_piece_not_uploaded_or_too_large_or_out_of_place_is_refused(memory, settings_env):
    video_id, token = record(memory, [b"head"])
    with pytest.raises(InvalidUpload, match="PUT it to its upload_url first"):
        memory.videos.commit_piece(video_id, token, "0" * 32)
    piece = memory.videos.start_piece(video_id, token)
    uploaded(memory, piece, b"x" * 100)
    with pytest.raises(RangeConflict, match="ends at byte 4"):
        memory.videos.commit_piece(video_id, token, piece.piece_id, ByteRange(0, 99, None))
    memory.videos.settings = settings_env(MAX_PIECE_BYTES=50)
    with pytest.raises(ChunkTooLarge, match="at most 50 bytes"):
        memory.videos.commit_piece(video_id, token, piece.piece_id)
    assert memory.backend.store.piece_size(video_id, piece.piece_id) is None  # removed
    assert memory.backend.catalog.get(video_id).chunk_count == 1
