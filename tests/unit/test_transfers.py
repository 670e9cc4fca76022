"""What a join moves through S3 (chalicelib.transfers): counted per join, apart from whatever
else the same process's store does meanwhile, and reported in the join's log lines and
metrics. Over the in-memory backend; the real strategies on real media are in
tests/integration/test_join_transfers.py (they run ffmpeg)."""
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from chalicelib import telemetry
from chalicelib.media.containers import WEBM
from chalicelib.media.joins import PreparedJoin
from chalicelib.media.probe import MediaInfo, Stream
from chalicelib.models import JoinMethod, JoinOutcome
from chalicelib.transfers import TransferCounter, Transfers, carried, scope
from tests.helpers import record
from tests.lambda_events import captured_logs, metric_values


def test_a_scope_counts_its_own_work_and_the_work_it_carries_to_threads():
    store = TransferCounter()
    with scope() as mine:
        store.count(read=10)
        with ThreadPoolExecutor(2) as pool:
            pool.submit(carried(store.count), written=20).result()
            pool.submit(store.count, written=1000).result()  # not carried: not this scope's
    store.count(read=5)  # after the scope
    assert mine.snapshot() == Transfers(read=10, written=20)
    assert store.snapshot() == Transfers(read=15, written=1020)  # the store's totals: all of it


def test_two_scopes_at_once_on_one_store_do_not_mix():
    store = TransferCounter()
    both_counting = threading.Barrier(2)
    seen: dict[str, Transfers] = {}

    def join(name: str, size: int) -> None:
        with scope() as moved:
            store.count(read=size)
            both_counting.wait(timeout=5)  # the other is in its scope too
            store.count(copied_in_s3=size)
            seen[name] = moved.snapshot()

    threads = [threading.Thread(target=join, args=(name, size))
               for name, size in (("a", 100), ("b", 7))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": Transfers(read=100, copied_in_s3=100), "b": Transfers(read=7, copied_in_s3=7)}
    assert store.snapshot() == Transfers(read=107, copied_in_s3=107)


@dataclass
class _Uploaded(PreparedJoin):
    store: object = None

    def upload(self) -> None:
        self.store.upload_file(self.preview_path, self.key, self.content_type)

    def verify(self) -> None:
        pass

    def abort(self) -> None:
        self.store.delete(self.key)


class ReadsEveryChunk:
    """A join strategy (the port chalicelib.media.joins defines) that reads the chunks, writes
    them out as the video and uploads it, the way the chunk join does without ffmpeg; while
    it reads, another job of the same process writes chunks of another video."""

    def __init__(self, services, other_video: tuple[int, str], other_chunks: list[bytes]):
        self.services, self.other_video, self.other_chunks = services, other_video, other_chunks

    def prepare(self, video, work_dir):
        store = self.services.backend.store
        other = threading.Thread(target=lambda: [
            self.services.videos.append(*self.other_video, chunk) for chunk in self.other_chunks])
        other.start()
        body = b"".join(store.read_chunk(video.video_id, i) for i in range(video.chunk_count))
        other.join()
        path = f"{work_dir}/joined.webm"
        with open(path, "wb") as out:
            out.write(body + b"-remuxed")
        audio = MediaInfo(1.0, (Stream("audio", "opus"),))  # no video: no poster, no ffmpeg
        return _Uploaded(key=store.compiled_key(video.video_id, video.chunk_count, "webm"),
                         container=WEBM, info=audio, method=JoinMethod.REMUX,
                         byte_size=len(body) + 8, preview_path=path, store=store)


@pytest.fixture
def metrics_on(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    telemetry.flush()


def test_a_join_reports_what_it_moved_and_not_what_another_job_did_meanwhile(memory, capsys, metrics_on):
    chunks = [b"a" * 1000, b"b" * 2000, b"c" * 300]
    video_id, _ = record(memory, chunks)
    other = record(memory, [b"o" * 10])
    memory.joiner.strategies = [ReadsEveryChunk(memory, other, [b"o" * 50_000] * 3)]
    store_before = memory.backend.store.transfers.snapshot()
    with captured_logs() as lines:
        assert memory.joiner.run(video_id) is JoinOutcome.JOINED
    expected = {"bytes_read": 3300, "bytes_written": 3308, "bytes_copied_in_s3": 0}
    [joined] = [line for line in lines if line["message"] == "joined"]
    [timings] = [line for line in lines if line["message"] == "join timings"]
    for line in (joined, timings):
        assert {name: line[name] for name in expected} == expected
    # The store saw the other job's 150,000 bytes too: a difference of its totals would not
    # have told the join's bytes apart.
    assert memory.backend.store.transfers.snapshot() - store_before == Transfers(
        read=3300, written=3308 + 150_000)
    telemetry.flush()
    out = capsys.readouterr().out
    assert metric_values(out, "JoinBytesMoved", join_method="remux") == [6608.0]
    assert metric_values(out, "JoinBytesCopiedInS3", join_method="remux") == [0.0]


def test_a_step_fetches_the_pieces_it_joins_a_few_at_once_counted_in_its_scope():
    from chalicelib.adapters.memory_store import MemoryStore
    from chalicelib.steps import TRANSFERS_AT_ONCE, WorkFiles

    two_at_once = threading.Barrier(2, timeout=5)  # broken, and the test failed, if one at a time

    class WaitingStore(MemoryStore):
        def download_file(self, key: str, path: str) -> None:
            two_at_once.wait()
            super().download_file(key, path)

    store = WaitingStore()
    names = [f"piece-{index:05d}.mp4" for index in range(TRANSFERS_AT_ONCE * 2)]
    for index, name in enumerate(names):
        store.objects[store.work_key(7, "rendition", 3, name)] = bytes([index]) * (index + 1)
    with tempfile.TemporaryDirectory() as work, scope() as moved:
        paths = WorkFiles(store, "rendition").get_many(7, 3, names, work)
        assert [os.path.basename(path) for path in paths] == names  # in the order asked
        for index, path in enumerate(paths):
            with open(path, "rb") as piece:
                assert piece.read() == bytes([index]) * (index + 1)
    assert moved.snapshot().read == sum(range(1, len(names) + 1))


def test_a_composition_holds_a_bounded_number_of_sent_parts_in_memory():
    """A sender faster than S3 waits at send() once SENDS_IN_FLIGHT parts are on their way,
    so a rendition streamed into an upload never holds the whole object in memory."""
    from chalicelib.adapters.s3 import SENDS_IN_FLIGHT, S3Composition

    class SlowS3:
        def __init__(self):
            self.gate, self.lock, self.in_flight, self.most = threading.Event(), threading.Lock(), 0, 0

        def upload_part(self, PartNumber, Body, **common):
            with self.lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
            self.gate.wait(timeout=30)
            with self.lock:
                self.in_flight -= 1
            return {"ETag": f"e{PartNumber}"}

        def complete_multipart_upload(self, **arguments):
            self.completed = [part["PartNumber"] for part in arguments["MultipartUpload"]["Parts"]]

    s3 = SlowS3()
    composition = S3Composition(s3, "bucket", "key", None, TransferCounter(), upload_id="u")
    returned = []

    def sender():
        for number in range(1, SENDS_IN_FLIGHT + 5):
            composition.send(number, b"x")
            returned.append(number)

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join(timeout=0.5)  # long enough for every send to return, were they not bounded
    assert thread.is_alive() and len(returned) == SENDS_IN_FLIGHT
    s3.gate.set()
    thread.join(timeout=30)
    composition.complete()
    assert s3.most <= SENDS_IN_FLIGHT and s3.completed == list(range(1, SENDS_IN_FLIGHT + 5))
