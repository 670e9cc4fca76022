"""The contract of the three ports (chalicelib.ports), held against both implementations:
the in-memory twins the unit tests run on, and the AWS adapters on moto. A fake that
drifts from what DynamoDB, S3 or SQS do fails here first."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import aws, wiring
from chalicelib.adapters.memory import MemoryStore
from chalicelib.errors import ChunkMissing, ConditionFailed, StorageUnavailable
from chalicelib.models import JoinMethod, MediaSummary
from chalicelib.settings import get_settings

MIB = 1024 * 1024
MEDIA = MediaSummary(container="webm", content_type="video/webm", duration=3.021,
                     byte_size=123_456, join_method=JoinMethod.SEGMENTS, audio_only=False,
                     video_codec="vp8", width=640, height=360, audio_codec="opus")


@pytest.fixture(params=["memory", "moto"])
def backend(request):
    if request.param == "memory":
        return wiring.memory_backend()
    request.getfixturevalue("aws")
    return wiring.aws_backend(get_settings())


@pytest.fixture(params=["memory", "emulator"])
def concurrent_catalog(request):
    """Catalogs that serve concurrent calls for real: the moto server over HTTP applies
    each DynamoDB request atomically, as DynamoDB does; the in-process mock does not."""
    if request.param == "emulator":
        request.getfixturevalue("emulator")
        return wiring.aws_backend(get_settings()).catalog
    return wiring.memory_backend().catalog


def read_object(backend, key: str) -> bytes | None:
    if isinstance(backend.store, MemoryStore):
        return backend.store.objects.get(key)
    client = aws.s3()
    try:
        return client.get_object(Bucket=get_settings().bucket_name, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


# --- catalog ---------------------------------------------------------------------------

def test_ids_count_up_from_one_and_unknown_ids_are_none(backend):
    catalog = backend.catalog
    first, second = catalog.create("a", 10.0), catalog.create("b", 11.0)
    assert (first.video_id, second.video_id) == (1, 2)
    assert catalog.get(1) == first and catalog.get(2).token_hash == "b"
    assert (first.chunk_count, first.byte_count, first.created_at) == (0, 0, 10.0)
    assert catalog.get(0) is None and catalog.get(999) is None


def test_concurrent_creates_get_distinct_ids(concurrent_catalog):
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: concurrent_catalog.create("h", 1.0).video_id, range(20)))
    assert sorted(ids) == list(range(1, 21))


def test_concurrent_claims_get_distinct_indices(concurrent_catalog):
    video = concurrent_catalog.create("h", 1.0)
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(
            lambda _: concurrent_catalog.claim_chunk(video.video_id, 10, "h", 1.0)[0], range(30)))
    assert sorted(claims) == list(range(30))
    stored = concurrent_catalog.get(video.video_id)
    assert (stored.chunk_count, stored.byte_count) == (30, 300)


def test_a_claim_with_the_wrong_hash_or_for_no_video_changes_nothing(backend):
    catalog = backend.catalog
    video = catalog.create("right", 1.0)
    with pytest.raises(ConditionFailed):
        catalog.claim_chunk(video.video_id, 10, "wrong", 2.0)
    with pytest.raises(ConditionFailed):
        catalog.claim_chunk(12345, 10, None, 2.0)
    assert catalog.get(video.video_id) == video
    assert catalog.get(12345) is None


def test_the_first_claim_requests_a_join_and_later_ones_see_it_pending(backend):
    catalog = backend.catalog
    video = catalog.create("h", 1.0)
    assert catalog.claim_chunk(video.video_id, 1, None, 100.0) == (0, None)
    assert catalog.claim_chunk(video.video_id, 1, None, 101.0) == (1, 100.0)
    assert catalog.get(video.video_id).updated_at == 101.0
    assert catalog.request_join(video.video_id, 102.0, stall_seconds=60) is False
    assert catalog.request_join(video.video_id, 161.0, stall_seconds=60) is True  # stalled
    assert catalog.request_join(video.video_id, 162.0, stall_seconds=60, urgent=True) is True
    assert catalog.request_join(video.video_id, 163.0, stall_seconds=60, urgent=True) is False
    stored = catalog.get(video.video_id)
    assert (stored.join_requested_at, stored.join_urgent_at) == (161.0, 162.0)
    catalog.renew_join_request(video.video_id, 170.0)
    assert catalog.get(video.video_id).join_requested_at == 170.0


def test_a_started_join_takes_the_requests_and_the_next_claim_asks_again(backend):
    catalog = backend.catalog
    video = catalog.create("h", 1.0)
    catalog.claim_chunk(video.video_id, 1, None, 100.0)
    catalog.request_join(video.video_id, 100.5, 60, urgent=True)
    started = catalog.start_join(video.video_id, 101.0)
    assert (started.join_requested_at, started.join_urgent_at) == (None, None)
    assert (started.join_started_at, started.joining_chunks) == (101.0, 1)
    assert catalog.claim_chunk(video.video_id, 1, None, 102.0) == (1, None)
    catalog.end_join(video.video_id)
    ended = catalog.get(video.video_id)
    assert (ended.join_started_at, ended.joining_chunks) == (None, None)
    with pytest.raises(ConditionFailed):
        catalog.start_join(999, 1.0)


def test_an_older_join_never_replaces_a_newer_result(backend):
    catalog = backend.catalog
    video = catalog.create("h", 1.0)
    for _ in range(4):
        catalog.claim_chunk(video.video_id, 1, None, 1.0)
    assert catalog.finish_join(video.video_id, 3, "k3", "p3", MEDIA) == []
    with pytest.raises(ConditionFailed):
        catalog.finish_join(video.video_id, 2, "k2", None, MEDIA)
    with pytest.raises(ConditionFailed):
        catalog.fail_join(video.video_id, 3, "late failure")
    stored = catalog.get(video.video_id)
    assert (stored.compiled_chunks, stored.compiled_key, stored.poster_key) == (3, "k3", "p3")
    assert stored.media == MEDIA
    # A newer join replaces both objects, and says which ones it replaced.
    assert sorted(catalog.finish_join(video.video_id, 4, "k4", None, MEDIA)) == ["k3", "p3"]
    assert catalog.get(video.video_id).poster_key is None


def test_a_failure_is_recorded_and_a_later_result_clears_it(backend):
    catalog = backend.catalog
    video = catalog.create("h", 1.0)
    catalog.claim_chunk(video.video_id, 1, None, 1.0)
    catalog.start_join(video.video_id, 2.0)
    catalog.fail_join(video.video_id, 1, "bad bytes")
    failed = catalog.get(video.video_id)
    assert (failed.failed_chunks, failed.error, failed.join_started_at) == (1, "bad bytes", None)
    catalog.claim_chunk(video.video_id, 1, None, 3.0)
    catalog.finish_join(video.video_id, 2, "k2", None, MEDIA)
    joined = catalog.get(video.video_id)
    assert (joined.failed_chunks, joined.error, joined.compiled_chunks) == (None, None, 2)


def test_a_released_chunk_is_counted_lost(backend):
    catalog = backend.catalog
    video = catalog.create("h", 1.0)
    for _ in range(3):
        catalog.claim_chunk(video.video_id, 10, None, 1.0)
    catalog.release_chunk(video.video_id, 1, 10)
    stored = catalog.get(video.video_id)
    assert stored.lost_chunks == frozenset({1})
    assert stored.stored_chunk_indices() == [0, 2]
    assert stored.byte_count == 20


def test_segments_are_committed_in_order_once_each_until_folding_stops(backend):
    catalog = backend.catalog
    video = catalog.create("h", 1.0)
    with pytest.raises(ConditionFailed):
        catalog.commit_segment(video.video_id, 2, 100)  # not the next one
    catalog.commit_segment(video.video_id, 1, 100)
    with pytest.raises(ConditionFailed):
        catalog.commit_segment(video.video_id, 1, 100)  # another job committed it first
    catalog.commit_segment(video.video_id, 2, 200)
    stored = catalog.get(video.video_id)
    assert (stored.segment_count, stored.segmented_bytes, stored.segments_off) == (2, 200, None)
    catalog.stop_segments(video.video_id, "chunk 3 starts another file")
    with pytest.raises(ConditionFailed):
        catalog.commit_segment(video.video_id, 3, 300)
    assert catalog.get(video.video_id).segments_off == "chunk 3 starts another file"


# --- object store ----------------------------------------------------------------------

def test_chunks_are_read_back_byte_for_byte_and_a_missing_one_says_so(backend):
    store = backend.store
    store.put_chunk(7, 0, b"\x1a\x45\xdf\xa3 first")
    store.put_chunk(7, 1, bytes(range(256)))
    assert store.read_chunk(7, 0) == b"\x1a\x45\xdf\xa3 first"
    assert store.read_chunk(7, 1) == bytes(range(256))
    with pytest.raises(ChunkMissing) as missing:
        store.read_chunk(7, 2)
    assert missing.value.index == 2
    assert read_object(backend, "videos/7/chunks/000001.chunk") == bytes(range(256))


def test_segments_and_fold_states_are_read_back_from_any_byte(backend):
    store = backend.store
    store.put_segment(7, 0, b"0123456789")
    store.put_fold_state(7, 1, b'{"sizes": [10]}')
    assert store.read_segment(7, 0) == b"0123456789"
    assert store.read_segment(7, 0, first_byte=4) == b"456789"
    assert store.read_fold_state(7, 1) == b'{"sizes": [10]}'


def test_compiled_objects_are_named_by_their_chunk_count(backend):
    assert backend.store.compiled_key(7, 42, "webm") == "videos/7/compiled/000042.webm"


def test_an_uploaded_file_is_published_and_can_be_deleted(backend, tmp_path):
    store = backend.store
    path = tmp_path / "joined.webm"
    path.write_bytes(b"video bytes")
    key = store.compiled_key(7, 1, "webm")
    store.upload_file(str(path), key, "video/webm")
    assert read_object(backend, key) == b"video bytes"
    assert key in store.presigned_get(key)
    store.delete(key)
    store.delete(key)  # not there any more: no error
    assert read_object(backend, key) is None


def test_a_composition_joins_sent_and_copied_parts_in_order(backend):
    store = backend.store
    store.put_segment(7, 1, b"b" * (5 * MIB))
    composition = store.start_composition(store.compiled_key(7, 3, "webm"), "video/webm")
    composition.send(3, b"tail")
    composition.copy_segment(2, 7, 1)
    composition.send(1, b"a" * (5 * MIB))
    composition.complete()
    assert read_object(backend, composition.key) == b"a" * (5 * MIB) + b"b" * (5 * MIB) + b"tail"


def test_a_part_under_five_mib_before_the_last_fails_and_leaves_nothing(backend):
    store = backend.store
    composition = store.start_composition(store.compiled_key(7, 2, "webm"), "video/webm")
    composition.send(1, b"too small")
    composition.send(2, b"last")
    with pytest.raises(StorageUnavailable, match="S3 refused the call"):
        composition.complete()
    assert read_object(backend, composition.key) is None


def test_an_aborted_composition_leaves_nothing(backend):
    store = backend.store
    composition = store.start_composition(store.compiled_key(7, 1, "webm"), "video/webm")
    composition.send(1, b"x")
    composition.abort()
    composition.abort()  # twice: no error
    assert read_object(backend, composition.key) is None


# --- job queue -------------------------------------------------------------------------

def test_a_join_request_is_delivered_once_acknowledged(backend):
    queue = backend.queue
    assert queue.receive() is None
    queue.schedule_join(7, urgent=True)
    assert queue.waiting() == (1, 0)
    delivery = queue.receive()
    assert (delivery.request.video_id, delivery.request.urgent) == (7, True)
    delivery.acknowledge()
    assert queue.waiting() == (0, 0)
    assert queue.receive() is None


def test_a_delayed_request_is_not_delivered_before_its_time(backend):
    queue = backend.queue
    queue.schedule_join(8, delay_seconds=60)
    assert queue.waiting() == (0, 1)
    assert queue.receive() is None
