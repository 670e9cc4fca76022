"""An append meets a fault at each of its steps (the DynamoDB claim, the S3 write, the undo
of the claim, the SQS request for a join; a lost answer after the write applied): the
client is told to retry (StorageUnavailable, a 503 with Retry-After), and the retry of the
same chunk leaves every chunk stored exactly once, in order."""
import pytest

from chalicelib.errors import StorageUnavailable
from chalicelib.uploads import ByteRange
from tests.conftest import fixture_chunks
from tests.helpers import record

OUTAGE = StorageUnavailable("the service did not answer (ReadTimeoutError); retry")


class Faults:
    """Makes named calls of the in-memory adapters fail once: before the call applies, or,
    for "after", once it applied (an answer lost on the way back)."""

    def __init__(self, monkeypatch, services):
        self.monkeypatch = monkeypatch
        self.services = services

    def fail_once(self, port: str, method: str, after: bool = False) -> None:
        target = getattr(self.services.backend, port)
        real = getattr(target, method)
        state = {"failed": False}

        def flaky(*args, **kwargs):
            if state["failed"]:
                return real(*args, **kwargs)
            state["failed"] = True
            if after:
                real(*args, **kwargs)
            raise OUTAGE

        self.monkeypatch.setattr(target, method, flaky)


FAULTS = {
    "the claim fails": [("catalog", "claim_chunk", False)],
    "the claim applies, its answer is lost": [("catalog", "claim_chunk", True)],
    "the S3 write fails": [("store", "put_chunk", False)],
    "the S3 write applies, its answer is lost": [("store", "put_chunk", True)],
    "the S3 write and the undo of the claim fail": [("store", "put_chunk", False),
                                                    ("catalog", "unclaim_chunk", False),
                                                    ("catalog", "release_chunk", False)],
}


@pytest.mark.parametrize("with_range", [False, True], ids=["appended at the end", "Content-Range"])
@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_a_fault_at_any_step_then_the_retry_stores_each_chunk_once(memory, monkeypatch, faults, with_range):
    chunks = fixture_chunks()
    video_id, token = record(memory, [])
    offset = 0

    def send(chunk):
        where = ByteRange(offset, offset + len(chunk) - 1, None) if with_range else None
        return memory.videos.append(video_id, token, chunk, where)

    send(chunks[0])
    offset += len(chunks[0])
    for port, method, after in faults:
        Faults(monkeypatch, memory).fail_once(port, method, after)
    with pytest.raises(StorageUnavailable):
        send(chunks[1])
    retried = send(chunks[1])  # the client sends the same chunk again
    assert (retried.chunk_index, retried.committed_bytes) == (1, offset + len(chunks[1]))
    offset += len(chunks[1])
    for chunk in chunks[2:]:
        send(chunk)
        offset += len(chunk)
    video = memory.backend.catalog.get(video_id)
    assert video.stored_chunk_indices() == list(range(len(chunks)))
    assert [memory.backend.store.read_chunk(video_id, i) for i in range(len(chunks))] == chunks
    assert video.byte_count == sum(map(len, chunks))


def test_a_join_request_the_queue_refused_is_asked_for_again_by_a_later_poll(clocked, monkeypatch):
    video_id, token = record(clocked, [])
    Faults(monkeypatch, clocked).fail_once("queue", "schedule_join")
    assert clocked.videos.append(video_id, token, b"chunk").chunk_index == 0  # stored: 200
    queue, clock = clocked.backend.queue, clocked.videos.clock
    assert queue.waiting() == (0, 0)
    clock.now += clocked.settings.join_delay_seconds + clocked.settings.join_stall_seconds
    clocked.videos.status(video_id, token)
    assert queue.waiting() == (1, 0)
