"""Exactly-once appends over the in-memory backend: a retry is recognised and stored once,
Content-Range puts each chunk at its byte offset or says where the recording ends, and a
finalized video takes no more chunks."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.errors import RangeConflict, VideoFinalized, WrongToken
from chalicelib.models import Status
from chalicelib.uploads import ByteRange
from tests.conftest import fixture_chunks
from tests.helpers import record


def at(first: int, chunk: bytes, total: int | None = None) -> ByteRange:
    return ByteRange(first, first + len(chunk) - 1, total)


def stored(services, video_id: int) -> list[bytes]:
    video = services.backend.catalog.get(video_id)
    return [services.backend.store.read_chunk(video_id, i) for i in video.stored_chunk_indices()]


def test_the_last_chunk_sent_again_is_answered_as_before_and_stored_once(memory):
    chunks = fixture_chunks()
    video_id, token = record(memory, chunks[:2])
    again = memory.videos.append(video_id, token, chunks[1])  # a retry after a lost answer
    assert (again.chunk_index, again.retry) == (1, True)
    assert again.committed_bytes == len(chunks[0]) + len(chunks[1])
    assert stored(memory, video_id) == chunks[:2]
    assert memory.videos.append(video_id, token, chunks[2]).chunk_index == 2


def test_a_retry_of_the_first_chunk_is_still_the_first(memory):
    first = fixture_chunks()[0]
    video_id, token = record(memory, [first])
    assert memory.videos.append(video_id, token, first).chunk_index == 0
    assert stored(memory, video_id) == [first]


def test_a_retry_stores_the_bytes_again_in_case_the_first_write_was_lost(memory):
    video_id, token = record(memory, [b"first", b"second"])
    memory.backend.store.delete("videos/1/chunks/000001.chunk")  # as if its write never landed
    memory.videos.append(video_id, token, b"second")
    assert memory.backend.store.read_chunk(video_id, 1) == b"second"


def test_chunks_at_their_offsets_are_committed_in_order(memory):
    chunks = fixture_chunks()
    video_id, token = record(memory, [])
    offset = 0
    for index, chunk in enumerate(chunks):
        appended = memory.videos.append(video_id, token, chunk, at(offset, chunk))
        offset += len(chunk)
        assert (appended.chunk_index, appended.committed_bytes) == (index, offset)
    assert stored(memory, video_id) == chunks


def test_the_same_range_again_with_the_same_bytes_is_a_retry(memory):
    chunks = fixture_chunks()
    video_id, token = record(memory, [])
    memory.videos.append(video_id, token, chunks[0], at(0, chunks[0]))
    memory.videos.append(video_id, token, chunks[1], at(len(chunks[0]), chunks[1]))
    again = memory.videos.append(video_id, token, chunks[1], at(len(chunks[0]), chunks[1]))
    assert (again.chunk_index, again.retry) == (1, True)
    assert stored(memory, video_id) == chunks[:2]


@pytest.mark.parametrize("case", ["same range, other bytes", "a gap", "an overlap",
                                  "an older chunk again", "a body shorter than its range"])
def test_a_chunk_that_does_not_start_where_the_recording_ends_is_409_naming_the_offset(memory, case):
    chunks = fixture_chunks()
    video_id, token = record(memory, [])
    end = len(chunks[0]) + len(chunks[1])
    memory.videos.append(video_id, token, chunks[0], at(0, chunks[0]))
    memory.videos.append(video_id, token, chunks[1], at(len(chunks[0]), chunks[1]))
    other = bytes(len(chunks[1]))
    request = {
        "same range, other bytes": (other, at(len(chunks[0]), other)),
        "a gap": (chunks[2], at(end + 100, chunks[2])),
        "an overlap": (chunks[2], at(end - 10, chunks[2])),
        "an older chunk again": (chunks[0], at(0, chunks[0])),
        "a body shorter than its range": (chunks[2][:-1], at(end, chunks[2])),
    }[case]
    with pytest.raises(RangeConflict, match=f"the recording ends at byte {end}") as conflict:
        memory.videos.append(video_id, token, *request)
    assert conflict.value.details == {"committed_bytes": end}
    assert stored(memory, video_id) == chunks[:2]


def test_racing_appends_at_one_offset_commit_one_and_tell_the_other_where_to_resume(memory):
    chunks = fixture_chunks()
    video_id, token = record(memory, [])
    memory.videos.append(video_id, token, chunks[0], at(0, chunks[0]))
    contenders = [chunks[1], bytes(len(chunks[1]))] * 4

    def attempt(chunk):
        try:
            return memory.videos.append(video_id, token, chunk, at(len(chunks[0]), chunk))
        except RangeConflict as conflict:
            return conflict.details["committed_bytes"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, contenders))
    committed = [a for a in answers if not isinstance(a, int)]
    assert len({a.chunk_index for a in committed}) == 1  # one chunk 1, its retries the same
    assert all(a == len(chunks[0]) + len(chunks[1]) for a in answers if isinstance(a, int))
    assert len(stored(memory, video_id)) == 2


def test_racing_appends_without_ranges_each_get_their_own_index(memory):
    video_id, token = record(memory, [])
    bodies = [bytes([i]) * 100 for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        indices = list(pool.map(lambda body: memory.videos.append(video_id, token, body).chunk_index,
                                bodies))
    assert sorted(indices) == list(range(16))
    assert sorted(stored(memory, video_id)) == sorted(bodies)  # none lost, none overwritten


def test_reaching_the_stated_total_finalizes_and_asks_for_a_join_now(clocked):
    chunks = fixture_chunks()[:2]
    total = sum(map(len, chunks))
    video_id, token = record(clocked, [])
    clocked.videos.append(video_id, token, chunks[0], at(0, chunks[0], total))
    assert clocked.backend.catalog.get(video_id).finalized_at is None
    clocked.videos.append(video_id, token, chunks[1], at(len(chunks[0]), chunks[1], total))
    assert clocked.backend.catalog.get(video_id).finalized_at is not None
    delivery = clocked.backend.queue.receive()
    assert (delivery.request.video_id, delivery.request.urgent) == (video_id, True)


def test_a_finalized_video_takes_no_more_chunks_but_answers_a_retry(memory):
    video_id, token = record(memory, [b"first", b"last"])
    view = memory.videos.finalize(video_id, token)
    assert (view.status, view.video.finalized_at is not None) == (Status.PROCESSING, True)
    assert memory.videos.append(video_id, token, b"last").retry
    with pytest.raises(VideoFinalized) as refused:
        memory.videos.append(video_id, token, b"more")
    assert refused.value.details == {"committed_bytes": len(b"firstlast")}
    with pytest.raises(WrongToken):
        memory.videos.finalize(video_id, "not-the-token")
