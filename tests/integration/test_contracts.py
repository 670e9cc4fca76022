"""The contract of the three ports (chalicelib.ports), held against both implementations:
the in-memory twins the unit tests run on, and the AWS adapters on moto. A fake that
drifts from what DynamoDB, S3 or SQS do fails here first."""
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import aws, wiring
from chalicelib.adapters.dynamodb import DynamoCatalog
from chalicelib.adapters.memory_catalog import MemoryCatalog
from chalicelib.adapters.keys import piece_key
from chalicelib.adapters.memory_store import MemoryStore
from chalicelib.errors import ChunkMissing, ConditionFailed, StorageUnavailable
from chalicelib.models import JoinMethod, MediaSummary, Rendition, RenditionState
from chalicelib.ports import (JOIN, RENDITION, RENDITION_ASSEMBLE, RENDITION_AUDIO, RENDITION_PIECE,
                              JoinRequest)
from chalicelib.settings import get_settings
from chalicelib.transfers import Transfers

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


_digests = itertools.count()


def claim(catalog, video_id: int, size: int, token_hash: str | None, now: float,
          digest: str | None = None, first: int | None = None) -> tuple[int, float | None]:
    """claim_chunk for a chunk of its own (a digest no other claim has), as
    (its index, when a join was requested before it)."""
    digest = digest or f"{next(_digests):064x}"
    before = catalog.claim_chunk(video_id, size, digest, token_hash, now, first=first)
    return before.chunk_count, before.join_requested_at


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
    first, second = catalog.create("a", "p", 10.0), catalog.create("b", "p", 11.0)
    assert (first.video_id, second.video_id) == (1, 2)
    assert catalog.get(2).token_hash == "b"
    assert (first.chunk_count, first.byte_count, first.created_at) == (0, 0, 10.0)
    assert (first.token_hash, first.playback_token_hash) == ("a", "p")
    catalog.set_playback_token(1, "p2")
    assert catalog.get(1).playback_token_hash == "p2"
    with pytest.raises(ConditionFailed):
        catalog.set_playback_token(999, "p3")
    assert catalog.get(0) is None and catalog.get(999) is None


def test_concurrent_creates_get_distinct_ids(concurrent_catalog):
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: concurrent_catalog.create("h", "p", 1.0).video_id, range(20)))
    assert sorted(ids) == list(range(1, 21))


def instances(backend, id_block_size: int, count: int) -> list:
    """`count` catalogs over the backend's one table and counter, as that many processes
    (Lambda instances) have, each reserving ids `id_block_size` at a time."""
    if isinstance(backend.catalog, MemoryCatalog):
        first = MemoryCatalog(id_block_size)
        return [first] + [first.another_instance() for _ in range(count - 1)]
    return [DynamoCatalog(aws.videos_table, get_settings().expire_after_seconds, id_block_size)
            for _ in range(count)]


def test_each_instance_hands_out_ids_from_a_block_of_its_own(backend):
    a, b = instances(backend, id_block_size=3, count=2)
    assert a.create("h", "p", 1.0).video_id == 1  # a reserves 1-3
    assert b.create("h", "p", 1.0).video_id == 4  # b reserves 4-6
    assert [a.create("h", "p", 1.0).video_id for _ in range(3)] == [2, 3, 7]  # then 7-9
    assert b.create("h", "p", 1.0).video_id == 5
    assert a.last_reserved_id == b.last_reserved_id == 9  # the counter: the last id reserved
    assert b.get(7).token_hash == "h" and a.get(5) is not None  # one table for both


def test_with_a_block_of_one_ids_count_up_with_no_gap(backend):
    a, b = instances(backend, id_block_size=1, count=2)
    assert [catalog.create("h", "p", 1.0).video_id for catalog in (a, b, a, a, b)] == [1, 2, 3, 4, 5]
    assert a.last_reserved_id == 5


def test_concurrent_claims_get_distinct_indices(concurrent_catalog):
    video = concurrent_catalog.create("h", "p", 1.0)
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(
            lambda _: claim(concurrent_catalog, video.video_id, 10, "h", 1.0)[0], range(30)))
    assert sorted(claims) == list(range(30))
    stored = concurrent_catalog.get(video.video_id)
    assert (stored.chunk_count, stored.byte_count) == (30, 300)


def test_a_claim_with_the_wrong_hash_or_for_no_video_changes_nothing(backend):
    catalog = backend.catalog
    video = catalog.create("right", "p", 1.0)
    with pytest.raises(ConditionFailed) as wrong:
        claim(catalog, video.video_id, 10, "wrong", 2.0)
    assert wrong.value.current == video  # the record as the write found it
    with pytest.raises(ConditionFailed) as missing:
        claim(catalog, 12345, 10, None, 2.0)
    assert missing.value.current is None
    assert catalog.get(video.video_id) == video
    assert catalog.get(12345) is None


def test_the_first_claim_requests_a_join_and_later_ones_see_it_pending(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    assert claim(catalog, video.video_id, 1, None, 100.0) == (0, None)
    assert claim(catalog, video.video_id, 1, None, 101.0) == (1, 100.0)
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
    video = catalog.create("h", "p", 1.0)
    claim(catalog, video.video_id, 1, None, 100.0)
    catalog.request_join(video.video_id, 100.5, 60, urgent=True)
    started = catalog.start_join(video.video_id, 101.0)
    assert (started.join_requested_at, started.join_urgent_at) == (None, None)
    assert (started.join_started_at, started.joining_chunks) == (101.0, 1)
    assert claim(catalog, video.video_id, 1, None, 102.0) == (1, None)
    catalog.end_join(video.video_id)
    ended = catalog.get(video.video_id)
    assert (ended.join_started_at, ended.joining_chunks) == (None, None)
    with pytest.raises(ConditionFailed):
        catalog.start_join(999, 1.0)


def test_a_running_join_renews_its_lease_until_it_ends(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    claim(catalog, video.video_id, 1, None, 1.0)
    started = catalog.start_join(video.video_id, 10.0)
    assert (started.join_started_at, started.join_alive_at) == (10.0, 10.0)
    assert catalog.renew_join_lease(video.video_id, 10.0, 30.0) is True
    assert catalog.get(video.video_id).join_alive_at == 30.0
    assert catalog.renew_join_lease(video.video_id, 9.0, 31.0) is False  # not this join
    catalog.start_join(video.video_id, 40.0)  # another took over
    assert catalog.renew_join_lease(video.video_id, 10.0, 41.0) is False
    catalog.end_join(video.video_id)
    assert catalog.renew_join_lease(video.video_id, 40.0, 42.0) is False
    ended = catalog.get(video.video_id)
    assert (ended.join_started_at, ended.join_alive_at) == (None, None)


def test_a_join_request_is_taken_again_once_it_is_stall_seconds_old(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    assert catalog.request_join(video.video_id, 100.0, stall_seconds=60) is True
    assert catalog.request_join(video.video_id, 159.0, stall_seconds=60) is False
    assert catalog.request_join(video.video_id, 160.0, stall_seconds=60) is True


def test_an_older_join_never_replaces_a_newer_result(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    for _ in range(4):
        claim(catalog, video.video_id, 1, None, 1.0)
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
    video = catalog.create("h", "p", 1.0)
    claim(catalog, video.video_id, 1, None, 1.0)
    catalog.start_join(video.video_id, 2.0)
    catalog.fail_join(video.video_id, 1, "bad bytes")
    failed = catalog.get(video.video_id)
    assert (failed.failed_chunks, failed.error, failed.join_started_at) == (1, "bad bytes", None)
    claim(catalog, video.video_id, 1, None, 3.0)
    catalog.finish_join(video.video_id, 2, "k2", None, MEDIA)
    joined = catalog.get(video.video_id)
    assert (joined.failed_chunks, joined.error, joined.compiled_chunks) == (None, None, 2)


def test_a_released_chunk_is_counted_lost(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    for _ in range(3):
        claim(catalog, video.video_id, 10, None, 1.0)
    catalog.release_chunk(video.video_id, 1, 10)
    stored = catalog.get(video.video_id)
    assert stored.lost_chunks == frozenset({1})
    assert stored.stored_chunk_indices() == [0, 2]
    assert stored.byte_count == 20


def test_segments_are_committed_in_order_once_each_until_folding_stops(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
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


def test_a_claim_remembers_the_chunk_and_its_retry_finds_the_record_moved_on(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    before = catalog.claim_chunk(video.video_id, 10, "d1", "h", 2.0)
    assert (before.chunk_count, before.byte_count, before.last_chunk_digest) == (0, 0, None)
    with pytest.raises(ConditionFailed) as again:  # the same write again: an SDK retry
        catalog.claim_chunk(video.video_id, 10, "d1", "h", 2.5)
    current = again.value.current
    assert (current.chunk_count, current.byte_count) == (1, 10)
    assert (current.last_chunk_size, current.last_chunk_digest) == (10, "d1")
    catalog.claim_chunk(video.video_id, 10, "d2", "h", 3.0)  # the same size, other bytes
    assert catalog.get(video.video_id).chunk_count == 2


def test_a_claim_at_a_byte_offset_holds_only_where_the_recording_ends(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    catalog.claim_chunk(video.video_id, 10, "d1", None, 2.0, first=0)
    with pytest.raises(ConditionFailed) as gap:
        catalog.claim_chunk(video.video_id, 5, "d2", None, 2.0, first=15)
    assert gap.value.current.byte_count == 10
    with pytest.raises(ConditionFailed):
        catalog.claim_chunk(video.video_id, 10, "d1", None, 2.0, first=0)  # the retry
    before = catalog.claim_chunk(video.video_id, 5, "d2", None, 3.0, first=10)
    assert (before.chunk_count, before.byte_count) == (1, 10)
    assert catalog.get(video.video_id).byte_count == 15


def test_a_claim_is_undone_only_while_nothing_was_claimed_after_it(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    first = catalog.claim_chunk(video.video_id, 10, "d1", None, 2.0)
    second = catalog.claim_chunk(video.video_id, 7, "d2", None, 3.0)
    assert catalog.unclaim_chunk(video.video_id, second, "d2") is True
    restored = catalog.get(video.video_id)
    assert (restored.chunk_count, restored.byte_count) == (1, 10)
    assert (restored.last_chunk_size, restored.last_chunk_digest) == (10, "d1")
    assert catalog.unclaim_chunk(video.video_id, second, "d2") is False  # done already
    catalog.claim_chunk(video.video_id, 7, "d3", None, 4.0)
    assert catalog.unclaim_chunk(video.video_id, first, "d1") is False  # d3 came after it
    assert catalog.get(video.video_id).chunk_count == 2
    assert catalog.unclaim_chunk(video.video_id, catalog.get(video.video_id), "d3") is False


def test_a_finalized_video_takes_no_claim(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    catalog.claim_chunk(video.video_id, 10, "d1", None, 2.0)
    assert catalog.finalize(video.video_id, 3.0).finalized_at == 3.0
    assert catalog.finalize(video.video_id, 4.0).finalized_at == 3.0  # the first counts
    with pytest.raises(ConditionFailed) as refused:
        catalog.claim_chunk(video.video_id, 5, "d2", None, 5.0)
    assert refused.value.current.finalized_at == 3.0
    with pytest.raises(ConditionFailed):
        catalog.finalize(999, 1.0)


def test_a_write_to_a_record_that_is_not_there_creates_nothing(backend):
    catalog = backend.catalog
    assert catalog.request_join(999, 1.0, stall_seconds=60) is False
    for write in (lambda: catalog.release_chunk(999, 0, 1), lambda: catalog.end_join(999),
                  lambda: catalog.fail_join(999, 1, "x"), lambda: catalog.stop_segments(999, "x"),
                  lambda: catalog.finish_join(999, 1, "k", None, MEDIA),
                  lambda: catalog.commit_segment(999, 1, 10), lambda: catalog.renew_join_request(999, 1.0)):
        with pytest.raises(ConditionFailed):
            write()
    assert catalog.get(999) is None


def test_a_deleted_record_is_gone_and_stays_gone(backend):
    catalog = backend.catalog
    video = catalog.create("h", "p", 1.0)
    claim(catalog, video.video_id, 1, None, 1.0)
    catalog.delete(video.video_id)
    assert catalog.get(video.video_id) is None
    with pytest.raises(ConditionFailed):
        catalog.delete(video.video_id)
    with pytest.raises(ConditionFailed):  # a join finishing late does not bring it back
        catalog.finish_join(video.video_id, 1, "k", None, MEDIA)
    assert catalog.get(video.video_id) is None
    assert catalog.create("h", "p", 2.0).video_id == video.video_id + 1  # ids are not reused


def test_only_recordings_never_joined_and_left_alone_are_abandoned(backend):
    catalog = backend.catalog
    old = catalog.create("h", "p", 10.0).video_id
    joined = catalog.create("h", "p", 10.0).video_id
    claim(catalog, joined, 1, None, 10.0)
    catalog.finish_join(joined, 1, "k", None, MEDIA)
    fresh = catalog.create("h", "p", 50.0).video_id
    assert catalog.abandoned(updated_before=20.0) == [old]
    with pytest.raises(ConditionFailed):
        catalog.delete(fresh, updated_before=20.0)
    with pytest.raises(ConditionFailed):
        catalog.delete(joined, updated_before=20.0)
    catalog.delete(old, updated_before=20.0)
    assert catalog.abandoned(updated_before=100.0) == [fresh]


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
    before = store.transfers.snapshot()
    composition = store.start_composition(store.compiled_key(7, 3, "webm"), "video/webm")
    composition.send(3, b"tail")
    composition.copy_segment(2, 7, 1, 5 * MIB)
    composition.send(1, b"a" * (5 * MIB))
    composition.complete()
    assert read_object(backend, composition.key) == b"a" * (5 * MIB) + b"b" * (5 * MIB) + b"tail"
    # The sent parts passed through here; the copied one stayed inside S3.
    assert store.transfers.snapshot() - before == Transfers(read=0, written=5 * MIB + 4,
                                                            copied_in_s3=5 * MIB)


def test_a_draft_keeps_its_parts_until_a_later_composition_completes_it(backend):
    store = backend.store
    store.put_segment(7, 1, b"b" * (5 * MIB))
    store.put_segment(7, 2, b"c" * (5 * MIB))
    draft = store.start_composition(store.draft_key(7, 2, "webm"), "video/webm")
    draft.copy_segment(2, 7, 1, 5 * MIB)
    draft.wait()  # while recording: the part is in S3, the upload stays open
    later = store.resume_composition(draft.key, draft.upload_id)
    later.copy_segment(3, 7, 2, 5 * MIB)
    later.wait()
    join = store.resume_composition(draft.key, draft.upload_id, list_parts=True)
    assert join.held == {2, 3}
    join.send(1, b"a" * (5 * MIB))
    join.send(4, b"tail")
    join.complete()
    assert read_object(backend, draft.key) == (b"a" * (5 * MIB) + b"b" * (5 * MIB)
                                               + b"c" * (5 * MIB) + b"tail")
    # Completed: a join or a fold that finds it again learns it is no more.
    assert store.resume_composition(draft.key, draft.upload_id, list_parts=True) is None


def test_the_store_counts_the_bytes_it_reads_and_writes(backend, tmp_path):
    store = backend.store
    before = store.transfers.snapshot()
    store.put_chunk(7, 0, b"x" * 1000)
    store.put_segment(7, 0, b"s" * 300)
    store.put_fold_state(7, 1, b"{}")
    assert store.read_chunk(7, 0, first_byte=100, max_bytes=50) == b"x" * 50  # a ranged read
    assert store.read_chunk(7, 0, first_byte=990) == b"x" * 10
    assert store.read_chunk(7, 0, first_byte=1000) == b""  # past the end: nothing moved
    assert store.read_chunk(7, 0) == b"x" * 1000
    assert store.read_segment(7, 0, first_byte=200) == b"s" * 100
    assert store.read_fold_state(7, 1) == b"{}"
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(b"j" * 2000)
    store.upload_file(str(poster), store.compiled_key(7, 1, "jpg"), "image/jpeg")
    assert store.transfers.snapshot() - before == Transfers(
        read=50 + 10 + 1000 + 100 + 2, written=1000 + 300 + 2 + 2000, copied_in_s3=0)


def test_a_committed_piece_is_copied_in_s3_not_through_here(backend):
    store = backend.store
    body = b"p" * 12_345
    key = piece_key(7, "abc")
    if isinstance(store, MemoryStore):  # what the client's PUT to the presigned URL does
        store.objects[key] = body
    else:
        aws.s3().put_object(Bucket=get_settings().bucket_name, Key=key, Body=body)
    before = store.transfers.snapshot()
    store.commit_piece(7, "abc", 0)
    assert store.transfers.snapshot() - before == Transfers(copied_in_s3=len(body))
    store.commit_piece(7, "abc", 0)  # moved already: a retry copies nothing
    assert store.transfers.snapshot() - before == Transfers(copied_in_s3=len(body))
    assert store.read_chunk(7, 0) == body


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


def test_a_video_s_objects_go_together_and_its_sources_alone(backend):
    store = backend.store
    for video_id in (7, 8):
        store.put_chunk(video_id, 0, b"chunk")
        store.put_segment(video_id, 0, b"segment")
        store.put_fold_state(video_id, 1, b"{}")
        composition = store.start_composition(store.compiled_key(video_id, 1, "webm"), "video/webm")
        composition.send(1, b"video")
        composition.complete()
    unfinished = store.start_composition(store.compiled_key(7, 2, "webm"), "video/webm")
    unfinished.send(1, b"x")
    store.delete_sources(8)
    assert read_object(backend, "videos/8/compiled/000001.webm") == b"video"
    with pytest.raises(ChunkMissing):
        store.read_chunk(8, 0)
    assert read_object(backend, "videos/8/segments/000000.seg") is None
    store.delete_video(7)
    for key in ("videos/7/chunks/000000.chunk", "videos/7/segments/000000.seg",
                "videos/7/segments/000001.json", "videos/7/compiled/000001.webm"):
        assert read_object(backend, key) is None
    assert read_object(backend, "videos/8/compiled/000001.webm") == b"video"
    if not isinstance(store, MemoryStore):  # S3 keeps the parts of an unfinished upload
        uploads = aws.s3().list_multipart_uploads(Bucket=get_settings().bucket_name)
        assert uploads.get("Uploads", []) == []


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


def test_a_chunk_is_read_a_range_at_a_time(backend):
    store = backend.store
    store.put_chunk(7, 0, bytes(range(100)))
    assert store.read_chunk(7, 0, max_bytes=10) == bytes(range(10))
    assert store.read_chunk(7, 0, first_byte=95, max_bytes=10) == bytes(range(95, 100))
    assert store.read_chunk(7, 0, first_byte=40) == bytes(range(40, 100))
    assert store.read_chunk(7, 0, first_byte=100, max_bytes=10) == b""


# --- the MP4 rendition (chalicelib.renditions) ------------------------------------------

def _joined(catalog, chunks: int = 2):
    video = catalog.create("h", "p", 1.0)
    for _ in range(chunks):
        claim(catalog, video.video_id, 1, None, 1.0)
    catalog.finish_join(video.video_id, chunks, f"k{chunks}", None, MEDIA)
    return video.video_id


def test_a_rendition_is_asked_for_once_until_it_stalls_and_its_job_renews_it(backend):
    catalog = backend.catalog
    video_id = _joined(catalog)
    assert catalog.request_rendition(video_id, 1, 10.0, stall_seconds=60) is False  # not compiled
    assert catalog.request_rendition(video_id, 2, 10.0, stall_seconds=60) is True
    pending = catalog.get(video_id).current_rendition()
    assert (pending.chunks, pending.state, pending.requested_at) == (2, RenditionState.PENDING, 10.0)
    assert catalog.request_rendition(video_id, 2, 30.0, stall_seconds=60) is False
    assert catalog.renew_rendition(video_id, 2, 50.0) is True  # the running job's heartbeat
    assert catalog.request_rendition(video_id, 2, 100.0, stall_seconds=60) is False
    assert catalog.request_rendition(video_id, 2, 110.0, stall_seconds=60) is True  # stalled
    assert catalog.renew_rendition(video_id, 1, 120.0) is False


def test_a_rendition_result_is_recorded_and_not_asked_for_again(backend):
    catalog = backend.catalog
    video_id = _joined(catalog)
    catalog.request_rendition(video_id, 2, 10.0, stall_seconds=60)
    ready = Rendition(2, RenditionState.READY, key="r2", byte_size=1000, video_codec="h264",
                      audio_codec="aac")
    assert catalog.finish_rendition(video_id, ready) == []
    assert catalog.get(video_id).current_rendition() == ready
    assert catalog.renew_rendition(video_id, 2, 20.0) is False  # no longer pending
    assert catalog.request_rendition(video_id, 2, 1000.0, stall_seconds=60) is False
    # the same rendition made again (a duplicate message) writes the same result
    assert catalog.finish_rendition(video_id, ready) == []
    failed = Rendition(2, RenditionState.FAILED, error="no frames")
    assert catalog.finish_rendition(video_id, failed) == ["r2"]
    assert catalog.get(video_id).current_rendition() == failed


def test_a_newer_join_forgets_the_rendition_and_an_older_result_never_replaces_it(backend):
    catalog = backend.catalog
    video_id = _joined(catalog)
    catalog.request_rendition(video_id, 2, 10.0, stall_seconds=60)
    old = Rendition(2, RenditionState.READY, key="r2", byte_size=1, video_codec="h264")
    catalog.finish_rendition(video_id, old)
    claim(catalog, video_id, 1, None, 20.0)
    # the older object's rendition is one of the objects a newer join replaces
    assert sorted(catalog.finish_join(video_id, 3, "k3", None, MEDIA)) == ["k2", "r2"]
    assert catalog.get(video_id).rendition is None
    with pytest.raises(ConditionFailed):  # a job of the older object finishing late
        catalog.finish_rendition(video_id, Rendition(2, RenditionState.READY, key="r2b"))
    assert catalog.request_rendition(video_id, 2, 30.0, stall_seconds=60) is False
    assert catalog.request_rendition(video_id, 3, 30.0, stall_seconds=60) is True
    newer = Rendition(3, RenditionState.TOO_LONG, error="too long")
    assert catalog.finish_rendition(video_id, newer) == []
    assert catalog.get(video_id).current_rendition() == newer


def test_a_rendition_never_brings_a_deleted_video_back(backend):
    catalog = backend.catalog
    video_id = _joined(catalog)
    catalog.request_rendition(video_id, 2, 10.0, stall_seconds=60)
    catalog.delete(video_id)
    assert catalog.request_rendition(video_id, 2, 100.0, stall_seconds=60) is False
    assert catalog.renew_rendition(video_id, 2, 100.0) is False
    with pytest.raises(ConditionFailed):
        catalog.finish_rendition(video_id, Rendition(2, RenditionState.READY, key="r"))
    assert catalog.get(video_id) is None


def test_a_rendition_is_kept_with_the_compiled_video_and_goes_with_the_video(backend, tmp_path):
    store = backend.store
    key = store.rendition_key(9, 3)
    assert key.startswith("videos/9/compiled/") and key != store.compiled_key(9, 3, "mp4")
    path = tmp_path / "r.mp4"
    path.write_bytes(b"rendition")
    store.upload_file(str(path), key, "video/mp4")
    store.put_chunk(9, 0, b"chunk")
    store.delete_sources(9)
    copy = tmp_path / "copy.mp4"
    store.download_file(key, str(copy))
    assert copy.read_bytes() == b"rendition"
    store.delete_video(9)
    assert read_object(backend, key) is None


def test_a_rendition_request_is_a_message_of_its_own_kind(backend):
    queue = backend.queue
    queue.schedule_rendition(7)
    queue.schedule_join(8)
    kinds = []
    while (delivery := queue.receive()) is not None:
        kinds.append((delivery.request.video_id, delivery.request.kind))
        delivery.acknowledge()
    assert sorted(kinds) == [(7, RENDITION), (8, JOIN)]


def test_a_rendition_s_steps_are_queued_a_message_each_beyond_one_batch(backend):
    queue = backend.queue
    steps = ([JoinRequest(7, False, RENDITION_PIECE, 3, piece) for piece in range(12)]
             + [JoinRequest(7, False, RENDITION_AUDIO, 3), JoinRequest(7, False, RENDITION_ASSEMBLE, 3)])
    queue.schedule_steps(steps)
    received = []
    while (delivery := queue.receive()) is not None:
        received.append(delivery.request)
        delivery.acknowledge()
    key = lambda request: (request.kind, request.piece if request.piece is not None else -1)  # noqa: E731
    assert sorted(received, key=key) == sorted(steps, key=key)


def test_the_steps_files_of_a_rendition_are_listed_and_removed_by_chunk_count(backend, tmp_path):
    store = backend.store
    source = tmp_path / "piece.bin"
    source.write_bytes(b"piece")
    for chunks, name in ((3, "plan.json"), (3, "piece-00000.mp4"), (4, "plan.json")):
        store.upload_file(str(source), store.work_key(9, "rendition", chunks, name), "application/octet-stream")
    assert store.work_files(9, "rendition", 3) == {"plan.json", "piece-00000.mp4"}
    assert store.work_files(9, "rendition", 5) == set()
    copy = tmp_path / "copy.bin"
    store.download_file(store.work_key(9, "rendition", 3, "piece-00000.mp4"), str(copy))
    assert copy.read_bytes() == b"piece"
    key = store.work_key(9, "rendition", 3, "piece-00000.mp4")
    assert [store.read(key, 1, 3), store.read(key, 3, 100), store.read(key, 5, 10)] == [b"iec", b"ce", b""]
    with pytest.raises(StorageUnavailable):
        store.read(store.work_key(9, "rendition", 3, "piece-00001.mp4"), 0, 10)
    store.delete_work(9, "rendition", 3)
    assert store.work_files(9, "rendition", 3) == set()
    assert store.work_files(9, "rendition", 4) == {"plan.json"}  # another compiled count's stay
    store.delete_video(9)
    assert store.work_files(9, "rendition", 4) == set()
