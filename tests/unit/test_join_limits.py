"""The chunk join refuses a recording its work space cannot hold before it reads a byte."""
import pytest

from chalicelib.errors import NotPlayable
from chalicelib.media.chunk_join import ChunkJoin, JoinLimits
from chalicelib.media.ffmpeg import Ffmpeg
from tests.helpers import record


def test_a_recording_larger_than_the_work_space_fails_naming_both_sizes(memory, tmp_path):
    video_id, _ = record(memory, [b"x" * 3_000_000, b"y" * 2_000_000])
    video = memory.backend.catalog.get(video_id)
    reads = []
    store = memory.backend.store
    original = store.read_chunk
    store.read_chunk = lambda *args, **kwargs: reads.append(args) or original(*args, **kwargs)
    join = ChunkJoin(store, Ffmpeg("ffmpeg"), JoinLimits(free_bytes=lambda _: 4_000_000))
    with pytest.raises(NotPlayable, match="the recording needs 5 MB of work space and the join "
                                          "has 4 MB: the recording is too large to join here"):
        join.prepare(video, str(tmp_path))
    assert reads == []
