"""The DynamoDB catalog on moto: ids, atomic chunk claims, join bookkeeping."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.catalog import Catalog, ConditionFailed


@pytest.fixture
def catalog(aws):
    return Catalog()


def test_ids_come_from_an_atomic_counter(emulator):
    catalog = Catalog()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: catalog.create("h").video_id, range(20)))
    assert sorted(ids) == list(range(1, 21))
    assert catalog.get(0) is None  # the counter item is not a video


def test_concurrent_claims_get_distinct_indices(emulator):
    catalog = Catalog()
    video = catalog.create("h")
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: catalog.claim_chunk(video.video_id, 10, "h", 1.0)[0],
                               range(30)))
    assert sorted(claims) == list(range(30))
    stored = catalog.get(video.video_id)
    assert (stored.chunk_count, stored.byte_count) == (30, 300)


def test_a_claim_with_the_wrong_hash_or_for_no_video_changes_nothing(catalog):
    video = catalog.create("right")
    with pytest.raises(ConditionFailed):
        catalog.claim_chunk(video.video_id, 10, "wrong", 1.0)
    with pytest.raises(ConditionFailed):
        catalog.claim_chunk(12345, 10, None, 1.0)
    assert catalog.get(video.video_id).chunk_count == 0
    assert catalog.get(12345) is None


def test_the_first_claim_requests_a_join_and_later_ones_see_it_pending(catalog):
    video = catalog.create("h")
    assert catalog.claim_chunk(video.video_id, 1, None, 100.0) == (0, None)
    assert catalog.claim_chunk(video.video_id, 1, None, 101.0) == (1, 100.0)
    assert catalog.request_join(video.video_id, 102.0, stall_seconds=60) is False
    assert catalog.request_join(video.video_id, 161.0, stall_seconds=60) is True  # stalled


def test_a_started_join_lets_the_next_append_request_another(catalog):
    video = catalog.create("h")
    catalog.claim_chunk(video.video_id, 1, None, 100.0)
    started = catalog.start_join(video.video_id, 101.0)
    assert started.join_requested_at is None and started.join_started_at == 101.0
    assert catalog.claim_chunk(video.video_id, 1, None, 102.0) == (1, None)


def test_an_older_join_never_replaces_a_newer_result(catalog):
    video = catalog.create("h")
    for _ in range(3):
        catalog.claim_chunk(video.video_id, 1, None, 1.0)
    assert catalog.finish_join(video.video_id, 3, "k3", None, {"duration": 1.5}) is None
    with pytest.raises(ConditionFailed):
        catalog.finish_join(video.video_id, 2, "k2", None, {})
    with pytest.raises(ConditionFailed):
        catalog.fail_join(video.video_id, 2, "late failure")
    stored = catalog.get(video.video_id)
    assert (stored.compiled_chunks, stored.compiled_key, stored.media) == (3, "k3", {"duration": 1.5})
    assert stored.status(now=2.0, stall_seconds=60) == "ready"


def test_status_follows_the_record(catalog):
    video = catalog.create("h")
    assert catalog.get(video.video_id).status(1.0, 60) == "empty"
    catalog.claim_chunk(video.video_id, 1, None, 1.0)
    assert catalog.get(video.video_id).status(2.0, 60) == "processing"
    assert catalog.get(video.video_id).status(100.0, 60) == "recording"  # the request stalled
    catalog.start_join(video.video_id, 3.0)
    catalog.fail_join(video.video_id, 1, "bad bytes")
    failed = catalog.get(video.video_id)
    assert (failed.status(4.0, 60), failed.error) == ("failed", "bad bytes")


def test_a_released_chunk_is_skipped_by_joins(catalog):
    video = catalog.create("h")
    for _ in range(3):
        catalog.claim_chunk(video.video_id, 10, None, 1.0)
    catalog.release_chunk(video.video_id, 1, 10)
    stored = catalog.get(video.video_id)
    assert stored.stored_chunk_indices() == [0, 2]
    assert stored.byte_count == 20
