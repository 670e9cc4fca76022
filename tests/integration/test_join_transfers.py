"""What a join moves through S3 after the last append (chalicelib.transfers), as its "joined"
log line reports it, on real media with the real ffmpeg, over the in-memory store and over
the S3 adapter on moto: a folded recording's join passes only its unfolded tail and its
head and check windows through this process and has S3 copy the segments; a join from the
chunks reads every chunk and writes the whole video."""
import pytest

from chalicelib import wiring
from chalicelib.adapters.memory_store import MemoryStore
from chalicelib.media.fold import Extension, FoldState
from chalicelib.settings import get_settings
from tests.helpers import object_bytes, record
from tests.integration.test_segments import CHUNK, in_chunks, long_recording
from tests.lambda_events import captured_logs
from tests.media_factory import unseekable_stream


@pytest.fixture(params=["memory", "moto"])
def services(request):
    if request.param == "memory":
        get_settings.cache_clear()
        return wiring.build(get_settings(), wiring.memory_backend())
    return request.getfixturevalue("on_moto")


def record_more(services, video_id: int, token: str, chunks: list[bytes]) -> None:
    for chunk in chunks:
        services.videos.append(video_id, token, chunk)


def stored_size(services, key: str) -> int:
    store = services.backend.store
    return len(store.objects[key] if isinstance(store, MemoryStore) else object_bytes(key))


def joined_line(services, video_id: int) -> dict:
    with captured_logs() as lines:
        assert services.joiner.run(video_id) == "joined"
    [joined] = [line for line in lines if line["message"] == "joined"]
    return joined


def test_a_folded_recording_s_join_moves_its_tail_and_has_s3_copy_the_segments(services):
    # A composed recording is checked by its first and last seconds, whatever its length.
    data = long_recording()
    chunks = in_chunks(data)
    video_id, token = record(services, chunks[:-2], fold_every=5)
    catalog, store = services.backend.catalog, services.backend.store
    services.joiner.folder.fold(catalog.get(video_id))  # all a waiting join would fold
    folded = catalog.get(video_id)
    state = FoldState.from_json(store.read_fold_state(video_id, folded.segment_count))
    assert len(state.sizes) == 3
    # The last segment was extended with the clusters after it: the join copies that.
    extension = Extension.from_json(store.read_extension(video_id, 3), state.format)
    assert extension.size > state.sizes[-1]
    record_more(services, video_id, token, chunks[-2:])  # the last two chunks, after the last fold
    joined = joined_line(services, video_id)
    video = catalog.get(video_id)
    assert joined["join_method"] == "segments"
    # Segment 0 goes out with the new head as part 1. The draft the fold filled while
    # recording holds the other segments; the join has S3 copy the extension over the last.
    assert video.compiled_key.endswith("/compiled/draft-000002.webm")
    assert joined["bytes_copied_in_s3"] == extension.size
    # Written: every part that is not a copy (the head with segment 0, the tail), and the poster.
    copied = sum(state.sizes[1:-1]) + extension.size
    assert joined["bytes_written"] == (stored_size(services, video.compiled_key) - copied
                                       + stored_size(services, video.poster_key))
    # Read: the fold state and the extension's, the chunks after the extension (from the
    # start of the one it ends in), segment 0 for part 1, and the extension for the last
    # seconds' check.
    after_extension = len(data) - extension.chunk * CHUNK
    assert after_extension < 3 * CHUNK
    assert 0 < joined["bytes_read"] <= after_extension + state.sizes[0] + extension.size + 16384
    assert joined["bytes_written"] - stored_size(services, video.poster_key) < state.sizes[0] + 3 * CHUNK


def test_a_join_from_the_chunks_reads_every_chunk_and_writes_the_whole_video(services):
    data = unseekable_stream("webm", "vp8", "opus", seconds=4.0, video_bitrate="2M")
    assert len(data) < 5 * 1024 * 1024  # less than a segment: the segment join declines it
    video_id, _ = record(services, in_chunks(data))
    joined = joined_line(services, video_id)
    video = services.backend.catalog.get(video_id)
    assert joined["join_method"] == "remux"
    assert joined["bytes_copied_in_s3"] == 0
    assert joined["bytes_written"] == (stored_size(services, video.compiled_key)
                                       + stored_size(services, video.poster_key))
    # Every chunk byte, read by the chunk join; the fold read them too before it declined.
    assert len(data) <= joined["bytes_read"] <= 2 * len(data)
