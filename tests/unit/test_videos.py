"""The API's use cases (chalicelib.videos) over the in-memory backend: create, append,
playback, status, and the join requests they leave on the queue."""
import pytest

from chalicelib import tokens
from chalicelib.errors import (
    MissingToken,
    NoChunks,
    NotPlayable,
    StorageUnavailable,
    VideoNotFound,
    WrongToken,
)
from chalicelib.models import JoinMethod, MediaSummary, Status
from chalicelib.videos import URGENT_JOIN_LOST_SECONDS, parse_video_id
from tests.conftest import fixture_chunks
from tests.helpers import queued_joins, record

MEDIA = MediaSummary(container="webm", content_type="video/webm", duration=3.0, byte_size=99,
                     join_method=JoinMethod.REMUX, audio_only=False, video_codec="vp8")


def compiled(services, video_id: int, poster: bool = True) -> None:
    """Record a compiled object for every chunk stored, as a finished join does."""
    catalog, store = services.backend.catalog, services.backend.store
    video = catalog.get(video_id)
    key = store.compiled_key(video_id, video.chunk_count, "webm")
    poster_key = store.compiled_key(video_id, video.chunk_count, "jpg") if poster else None
    catalog.finish_join(video_id, video.chunk_count, key, poster_key, MEDIA)


def test_create_hands_out_counted_ids_and_a_token_stored_only_as_its_hash(memory):
    first, second = memory.videos.create(), memory.videos.create()
    assert (first.view.video.video_id, second.view.video.video_id) == (1, 2)
    assert first.view.status is Status.EMPTY
    assert first.upload_token != second.upload_token and len(first.upload_token) >= 43
    stored = memory.backend.catalog.get(1)
    assert stored.token_hash == tokens.token_hash(first.upload_token) != first.upload_token


def test_appends_claim_indices_in_order_and_store_each_chunk_as_sent(memory):
    chunks = fixture_chunks()
    video_id, token = record(memory, chunks[:3])
    appended = memory.videos.append(video_id, token, chunks[3])
    assert (appended.chunk_index, appended.chunk_bytes) == (3, len(chunks[3]))
    assert [memory.backend.store.read_chunk(video_id, i) for i in range(4)] == chunks[:4]
    video = memory.backend.catalog.get(video_id)
    assert (video.chunk_count, video.byte_count) == (4, sum(map(len, chunks[:4])))


def test_an_append_needs_the_video_and_its_token(memory):
    video_id, token = record(memory, [])
    with pytest.raises(MissingToken):
        memory.videos.append(video_id, None, b"x")
    with pytest.raises(WrongToken):
        memory.videos.append(video_id, "not-the-token", b"x")
    with pytest.raises(VideoNotFound, match="no video 99"):
        memory.videos.append(99, token, b"x")
    assert memory.backend.catalog.get(video_id).chunk_count == 0
    assert memory.backend.store.objects == {}


def test_open_auth_mode_needs_no_token(settings_env):
    from chalicelib import wiring
    services = wiring.build(settings_env(AUTH_MODE="open"), wiring.memory_backend())
    video_id = services.videos.create().view.video.video_id
    assert services.videos.append(video_id, None, b"chunk").chunk_index == 0
    assert services.videos.status(video_id, None).status is Status.PROCESSING


def test_a_chunk_the_store_refuses_leaves_the_record_as_it_was(memory, monkeypatch):
    video_id, token = record(memory, [b"first"])
    before = memory.backend.catalog.get(video_id)
    store = memory.backend.store

    def refuse(*args):
        raise StorageUnavailable("S3 did not answer (EndpointConnectionError); retry")

    with monkeypatch.context() as patch:
        patch.setattr(store, "put_chunk", refuse)
        with pytest.raises(StorageUnavailable):
            memory.videos.append(video_id, token, b"second")
    assert memory.backend.catalog.get(video_id) == before
    retried = memory.videos.append(video_id, token, b"second")  # the client's retry
    assert (retried.chunk_index, retried.committed_bytes, retried.retry) == (1, 11, False)
    assert memory.backend.store.read_chunk(video_id, 1) == b"second"


def test_a_chunk_claimed_by_a_racing_append_is_skipped_when_its_store_fails(memory, monkeypatch):
    video_id, token = record(memory, [b"first"])
    store, catalog = memory.backend.store, memory.backend.catalog
    real_put = store.put_chunk

    def race_then_refuse(video, index, body):
        if body == b"second":  # another append claims the next index meanwhile
            memory.videos.append(video_id, token, b"third")
            raise StorageUnavailable("S3 did not answer (EndpointConnectionError); retry")
        real_put(video, index, body)

    monkeypatch.setattr(store, "put_chunk", race_then_refuse)
    with pytest.raises(StorageUnavailable):
        memory.videos.append(video_id, token, b"second")
    video = catalog.get(video_id)
    assert video.stored_chunk_indices() == [0, 2]  # the slot cannot be undone: joins skip it
    assert video.byte_count == len(b"first") + len(b"third")


def test_an_append_is_stored_even_when_the_queue_is_unreachable(memory, monkeypatch):
    video_id, token = record(memory, [])

    def unreachable(*args, **kwargs):
        raise StorageUnavailable("SQS did not answer (EndpointConnectionError); retry")

    monkeypatch.setattr(memory.backend.queue, "schedule_join", unreachable)
    assert memory.videos.append(video_id, token, b"chunk").chunk_index == 0
    assert memory.backend.store.read_chunk(video_id, 0) == b"chunk"


def test_appends_leave_at_most_one_join_pending_and_ask_again_once_it_stalled(clocked):
    video_id, token = record(clocked, [b"a", b"b", b"c"])
    queue, clock = clocked.backend.queue, clocked.videos.clock
    assert queued_joins(queue, delayed=True) == 1  # the first append's, JOIN_DELAY_SECONDS ahead
    clock.now += clocked.settings.join_delay_seconds + clocked.settings.join_stall_seconds + 1
    queue.receive()  # taken by a worker that died: the join never ran
    clocked.videos.append(video_id, token, b"d")
    assert queued_joins(queue, delayed=True) == 1  # asked for again
    clocked.videos.append(video_id, token, b"e")
    assert queued_joins(queue, delayed=True) == 1


def test_playback_before_any_chunk_is_refused(memory):
    video_id, token = record(memory, [])
    with pytest.raises(NoChunks):
        memory.videos.playback(video_id, token)


def urgent_requests(queue) -> list[int]:
    """Take every request due now off the queue; the ids of the urgent ones."""
    taken = []
    while (delivery := queue.receive()) is not None:
        taken.append(delivery.request)
    return [request.video_id for request in taken if request.urgent]


def test_playback_of_a_stale_video_asks_for_one_urgent_join(clocked):
    video_id, token = record(clocked, fixture_chunks())
    queue, clock = clocked.backend.queue, clocked.videos.clock
    for _ in range(3):  # a player polling: one urgent join, not one per call
        assert clocked.videos.playback(video_id, token).url is None
    assert urgent_requests(queue) == [video_id]
    clock.now += URGENT_JOIN_LOST_SECONDS - 1
    clocked.videos.playback(video_id, token)
    assert urgent_requests(queue) == []  # still expected to start
    clock.now += 2
    clocked.videos.playback(video_id, token)
    assert urgent_requests(queue) == [video_id]  # presumed lost: asked again


def test_playback_while_a_join_of_these_chunks_runs_asks_for_no_other(clocked):
    video_id, token = record(clocked, fixture_chunks())
    clocked.backend.catalog.start_join(video_id, clocked.videos.clock())
    assert clocked.videos.playback(video_id, token).url is None
    assert urgent_requests(clocked.backend.queue) == []


def test_playback_of_a_ready_video_is_a_signed_url_of_its_compiled_object(memory):
    video_id, token = record(memory, fixture_chunks())
    compiled(memory, video_id)
    playback = memory.videos.playback(video_id, token)
    assert "videos/1/compiled/000006.webm" in playback.url
    assert playback.content_type == "video/webm"


def test_playback_of_a_failed_video_says_why(memory):
    video_id, token = record(memory, [b"notes"])
    memory.backend.catalog.fail_join(video_id, 1, "the first chunk does not start with a header")
    with pytest.raises(NotPlayable, match="does not start with a header"):
        memory.videos.playback(video_id, token)


def test_status_shows_the_record_and_a_signed_poster_once_joined(memory):
    video_id, token = record(memory, fixture_chunks()[:2])
    view = memory.videos.status(video_id, token)
    assert (view.status, view.poster_url) == (Status.PROCESSING, None)
    compiled(memory, video_id)
    view = memory.videos.status(video_id, token)
    assert view.status is Status.READY
    assert "videos/1/compiled/000002.jpg" in view.poster_url
    with pytest.raises(WrongToken):
        memory.videos.status(video_id, "wrong")


@pytest.mark.parametrize("raw", ["abc", "-1", "1.5", "0", "", "1" * 16, "1e3", " 1"])
def test_ids_are_whole_numbers_from_one(raw):
    from chalicelib.errors import InvalidVideoId
    with pytest.raises(InvalidVideoId):
        parse_video_id(raw)


def test_a_valid_id_is_read_as_a_number():
    assert parse_video_id("14") == 14 and parse_video_id("9" * 15) == 10**15 - 1


def test_the_playback_token_reads_but_never_writes(memory):
    created = memory.videos.create()
    video_id, upload, playback = created.view.video.video_id, created.upload_token, created.playback_token
    assert playback != upload
    memory.videos.append(video_id, upload, b"chunk")
    assert memory.videos.playback(video_id, None, url_token=playback).url is None  # 202: joining
    assert memory.videos.playback(video_id, playback).url is None  # in the header too
    assert memory.videos.status(video_id, playback).video.chunk_count == 1
    with pytest.raises(WrongToken):
        memory.videos.append(video_id, playback, b"more")
    with pytest.raises(WrongToken):
        memory.videos.finalize(video_id, playback)
    with pytest.raises(WrongToken):
        memory.videos.new_playback_token(video_id, playback)


def test_the_upload_token_is_refused_in_a_url(memory):
    created = memory.videos.create()
    video_id = created.view.video.video_id
    memory.videos.append(video_id, created.upload_token, b"chunk")
    with pytest.raises(WrongToken, match="does not go in a URL"):
        memory.videos.playback(video_id, None, url_token=created.upload_token)
    with pytest.raises(WrongToken, match="not this video's playback_token"):
        memory.videos.playback(video_id, None, url_token="guess")
    with pytest.raises(MissingToken):
        memory.videos.playback(video_id, None)
    assert memory.videos.playback(video_id, created.upload_token).url is None  # header: fine


def test_a_new_playback_token_replaces_the_old_one(memory):
    created = memory.videos.create()
    video_id = created.view.video.video_id
    memory.videos.append(video_id, created.upload_token, b"chunk")
    fresh = memory.videos.new_playback_token(video_id, created.upload_token)
    assert fresh not in (created.playback_token, created.upload_token)
    assert memory.videos.playback(video_id, None, url_token=fresh).url is None
    with pytest.raises(WrongToken):
        memory.videos.playback(video_id, None, url_token=created.playback_token)


def test_delete_removes_the_record_and_every_object(memory):
    video_id, token = record(memory, fixture_chunks()[:2])
    other_id, _ = record(memory, [b"another video"])
    compiled(memory, video_id)
    memory.backend.store.put_segment(video_id, 0, b"segment")
    with pytest.raises(WrongToken):
        memory.videos.delete(video_id, memory.videos.create().upload_token)
    memory.videos.delete(video_id, token)
    assert memory.backend.catalog.get(video_id) is None
    assert [key for key in memory.backend.store.objects if key.startswith("videos/1/")] == []
    assert memory.backend.store.read_chunk(other_id, 0) == b"another video"
    with pytest.raises(VideoNotFound):
        memory.videos.delete(video_id, token)
    with pytest.raises(VideoNotFound):
        memory.videos.append(video_id, token, b"late")


def test_recordings_never_joined_and_left_alone_expire(clocked):
    catalog, clock = clocked.backend.catalog, clocked.videos.clock
    abandoned, _ = record(clocked, [b"left"])
    finished, _ = record(clocked, [b"done"])
    compiled(clocked, finished)
    clock.now += clocked.settings.expire_after_seconds - 10
    recent, recent_token = record(clocked, [b"still going"])
    clock.now += 11
    assert clocked.videos.expire_abandoned() == [abandoned]
    assert catalog.get(abandoned) is None
    assert not any(key.startswith(f"videos/{abandoned}/") for key in clocked.backend.store.objects)
    assert catalog.get(finished) is not None and catalog.get(recent) is not None
    assert clocked.videos.expire_abandoned() == []
