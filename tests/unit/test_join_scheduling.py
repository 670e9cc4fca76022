"""The join job's decisions (chalicelib.joiner) over the in-memory backend: when it waits,
when it declines to run, what it does for a chunk still in flight, and how it records bytes
that are no video. Joins that run ffmpeg are in tests/integration/test_joiner.py."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.errors import NotPlayable, StorageUnavailable
from chalicelib.joiner import LOST_CHUNK_SECONDS
from chalicelib.models import JoinOutcome, Status
from tests.conftest import fixture_chunks
from tests.helpers import queued_joins, record, status_of


def test_no_such_video_and_nothing_to_join(memory):
    assert memory.joiner.run(42) is JoinOutcome.NO_SUCH_VIDEO
    video_id, _ = record(memory, [])
    assert memory.joiner.run(video_id) is JoinOutcome.UP_TO_DATE


def test_a_join_waits_while_the_recording_goes_on_and_comes_back(clocked):
    video_id, token = record(clocked, fixture_chunks()[:3])
    queue, clock = clocked.backend.queue, clocked.videos.clock
    assert queued_joins(queue, delayed=True) == 1
    clock.now += 2  # the last chunk came 2 s ago: still recording
    assert clocked.joiner.run(video_id, urgent=False) is JoinOutcome.WAITING_FOR_PAUSE
    assert queued_joins(queue, delayed=True) == 2  # it put itself back on the queue
    video = clocked.backend.catalog.get(video_id)
    assert video.join_requested_at == clock.now  # renewed: pending, not stalled
    assert video.join_started_at is None
    assert status_of(clocked.videos, video_id, token)["status"] == "processing"


def test_an_urgent_request_does_not_wait_for_the_pause(clocked):
    video_id, token = record(clocked, [b"not a recording"])
    clocked.videos.playback(video_id, token)  # someone waits: urgent
    assert clocked.joiner.run(video_id, urgent=False) is JoinOutcome.FAILED  # it ran


def test_no_second_join_of_the_same_chunks_while_one_runs(clocked):
    video_id, token = record(clocked, fixture_chunks())
    catalog, clock = clocked.backend.catalog, clocked.videos.clock
    catalog.start_join(video_id, clock.now)  # a join of all 6 chunks is running elsewhere
    assert clocked.joiner.run(video_id) is JoinOutcome.ALREADY_BEING_JOINED
    clocked.videos.append(video_id, token, b"more")  # a new chunk: that join is out of date
    assert not catalog.get(video_id).joining_now(clock.now, clocked.settings.join_stall_seconds)


def test_a_chunk_still_in_flight_defers_the_join_and_asks_again(clocked):
    video_id, token = record(clocked, fixture_chunks()[:2])
    catalog, queue, clock = clocked.backend.catalog, clocked.backend.queue, clocked.videos.clock
    catalog.claim_chunk(video_id, 10, "in flight", None, clock.now)  # claimed, its bytes not yet stored
    assert clocked.joiner.run(video_id) is JoinOutcome.WAITING_FOR_CHUNK
    video = catalog.get(video_id)
    assert video.join_started_at is None and video.lost_chunks == frozenset()
    assert status_of(clocked.videos, video_id, token)["status"] == "processing"
    clock.now += 1
    assert queue.receive().request.urgent  # it asked for itself again, at once


def test_a_chunk_claimed_long_ago_and_never_stored_is_given_up(clocked):
    video_id, _ = record(clocked, fixture_chunks()[:2])
    catalog, clock = clocked.backend.catalog, clocked.videos.clock
    catalog.claim_chunk(video_id, 10, "in flight", None, clock.now)
    clock.now += LOST_CHUNK_SECONDS + 1
    assert clocked.joiner.run(video_id) is JoinOutcome.WAITING_FOR_CHUNK
    assert catalog.get(video_id).lost_chunks == frozenset({2})


def test_bytes_that_are_no_recording_fail_with_the_reason_and_stay_stored(memory):
    video_id, token = record(memory, [b"not a video at all" * 100, b"more"])
    assert memory.joiner.run(video_id) is JoinOutcome.FAILED
    status = status_of(memory.videos, video_id, token)
    assert status["status"] == Status.FAILED.value
    assert status["error"] == "the first chunk does not start with a WebM, Matroska or MP4 header"
    assert memory.backend.store.read_chunk(video_id, 1) == b"more"
    assert memory.joiner.run(video_id) is JoinOutcome.UP_TO_DATE  # failed for these chunks


def test_a_join_that_cannot_reach_storage_is_released_for_a_retry(memory, monkeypatch):
    video_id, _ = record(memory, fixture_chunks())

    def unreachable(*args, **kwargs):
        raise StorageUnavailable("S3 did not answer (ReadTimeoutError); retry")

    monkeypatch.setattr(memory.backend.store, "read_chunk", unreachable)
    with pytest.raises(StorageUnavailable):
        memory.joiner.run(video_id)
    video = memory.backend.catalog.get(video_id)
    assert (video.join_started_at, video.failed_chunks) == (None, None)  # not failed: retried


def test_a_join_whose_lease_lapsed_is_taken_over(clocked):
    video_id, _ = record(clocked, [b"not a recording"])
    catalog, clock = clocked.backend.catalog, clocked.videos.clock
    catalog.start_join(video_id, clock.now)  # its worker dies: no heartbeat follows
    assert clocked.joiner.run(video_id) is JoinOutcome.ALREADY_BEING_JOINED
    clock.now += clocked.settings.join_stall_seconds
    assert clocked.joiner.run(video_id) is JoinOutcome.FAILED  # taken over, and it ran


def test_polling_the_status_asks_again_for_a_join_that_was_lost(clocked):
    video_id, token = record(clocked, [b"chunk"])
    queue, clock = clocked.backend.queue, clocked.videos.clock
    clock.now += clocked.settings.join_delay_seconds
    queue.receive()  # the append's join, taken by a worker that died
    assert status_of(clocked.videos, video_id, token)["status"] == "processing"
    assert queued_joins(queue) == 0  # still expected: nothing asked
    clock.now += clocked.settings.join_stall_seconds
    assert status_of(clocked.videos, video_id, token)["status"] == "processing"
    assert queued_joins(queue) == 1  # presumed lost: asked again
    status_of(clocked.videos, video_id, token)
    assert queued_joins(queue) == 1  # once


class _Blocking:
    """A join strategy that holds the join until released, to watch the lease meanwhile."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()

    def prepare(self, video, work_dir):
        self.started.set()
        self.release.wait(10)
        raise NotPlayable("released")


def test_a_running_join_renews_its_lease(settings_env):
    from chalicelib import wiring
    services = wiring.build(settings_env(JOIN_STALL_SECONDS=3), wiring.memory_backend())
    blocking = _Blocking()
    services.joiner.strategies = [blocking]
    video_id, _ = record(services, [b"chunk"])
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(services.joiner.run, video_id)
        assert blocking.started.wait(5)
        started = services.backend.catalog.get(video_id)
        time.sleep(1.5)  # more than one beat: every third of JOIN_STALL_SECONDS
        renewed = services.backend.catalog.get(video_id)
        blocking.release.set()
        assert running.result(10) is JoinOutcome.FAILED
    assert renewed.join_started_at == started.join_started_at
    assert renewed.join_alive_at > started.join_alive_at
    assert services.backend.catalog.get(video_id).join_alive_at is None  # over: no lease


def test_a_finished_video_keeps_only_its_compiled_object(memory):
    from tests.unit.test_videos import compiled
    video_id, token = record(memory, [b"first", b"second"])
    store = memory.backend.store
    store.put_segment(video_id, 0, b"segment")
    compiled(memory, video_id)
    store.objects[store.compiled_key(video_id, 2, "webm")] = b"the video"
    memory.videos.finalize(video_id, token)
    requests = []
    while (delivery := memory.backend.queue.receive()) is not None:
        requests.append(delivery.request)
    assert any(request.urgent for request in requests)  # even of a video joined already
    assert memory.joiner.run(video_id) is JoinOutcome.UP_TO_DATE
    assert sorted(store.objects) == ["videos/1/compiled/000002.webm"]


def test_a_join_that_keeps_vanishing_fails_the_video_with_the_reason(clocked):
    video_id, token = record(clocked, fixture_chunks())
    catalog, clock = clocked.backend.catalog, clocked.videos.clock
    for attempt in (1, 2, 3):  # each started, then its worker died (out of time, killed)
        assert catalog.get(video_id).next_join_attempt() == attempt
        catalog.start_join(video_id, clock.now, attempt)
        clock.now += clocked.settings.join_stall_seconds
    assert clocked.joiner.run(video_id) is JoinOutcome.FAILED
    status = status_of(clocked.videos, video_id, token)
    assert status["status"] == "failed"
    assert status["error"] == ("the join of these chunks started 3 times and never finished: "
                               "it runs out of time or memory")


def test_a_fault_of_the_join_itself_fails_the_video_instead_of_looping(memory):
    class Broken:
        def prepare(self, video, work_dir):
            raise KeyError("a bug")

    memory.joiner.strategies = [Broken()]
    video_id, token = record(memory, fixture_chunks())
    assert memory.joiner.run(video_id) is JoinOutcome.FAILED
    assert status_of(memory.videos, video_id, token)["error"] == "the join failed (KeyError); the chunks are kept"
    assert memory.backend.store.read_chunk(video_id, 0) == fixture_chunks()[0]
