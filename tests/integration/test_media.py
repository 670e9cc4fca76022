"""Joining chunks with the real ffmpeg: one stream cut anywhere, complete files, garbage."""
import io
import os

import pytest

from chalicelib.media import containers
from chalicelib.errors import NotPlayable
from chalicelib.media.chunk_join import join_chunks
from chalicelib.media.ffmpeg import Ffmpeg
from tests.conftest import fixture_chunks
from tests.inspect_media import matroska_has_cues, mp4_top_level_boxes
from tests.media_factory import cut, unseekable_stream


@pytest.fixture
def ffmpeg():
    return Ffmpeg(os.environ["FFMPEG_BINARY"])


def test_chromium_chunks_join_into_a_seekable_webm(ffmpeg, tmp_path):
    joined = join_chunks(ffmpeg, fixture_chunks(), str(tmp_path))
    assert joined.container is containers.WEBM
    assert joined.info.duration == pytest.approx(3.0, abs=0.05)
    assert {s.codec for s in joined.info.streams} == {"vp8", "opus"}
    assert matroska_has_cues(open(joined.path, "rb"))


def test_a_later_chunk_alone_is_not_a_video(ffmpeg, tmp_path):
    with pytest.raises(NotPlayable, match="header"):
        join_chunks(ffmpeg, fixture_chunks()[1:], str(tmp_path))


@pytest.mark.parametrize("sizes", [
    [1], [1, 1, 1, 1], [3, 40], [5, 7, 11, 13], None])
def test_a_stream_cut_anywhere_joins_to_its_full_length(ffmpeg, tmp_path, sizes):
    stream = unseekable_stream("webm", "vp8", "opus", seconds=2.0)
    chunks = cut(stream, sizes=sizes + [len(stream) // 3] if sizes else None)
    joined = join_chunks(ffmpeg, chunks, str(tmp_path))
    assert joined.files == 1
    assert joined.info.duration == pytest.approx(2.0, abs=0.1)
    assert matroska_has_cues(open(joined.path, "rb"))


def test_chunks_given_as_block_iterators_join_the_same(ffmpeg, tmp_path):
    stream = unseekable_stream("webm", "vp8", "opus", seconds=2.0)
    chunks = [iter([piece[:10], piece[10:]]) for piece in cut(stream, pieces=5)]
    joined = join_chunks(ffmpeg, chunks, str(tmp_path))
    assert joined.info.duration == pytest.approx(2.0, abs=0.1)


def test_fragmented_mp4_becomes_mp4_with_moov_first(ffmpeg, tmp_path):
    stream = unseekable_stream("mp4", "h264", "aac", seconds=2.0)
    assert mp4_top_level_boxes(io.BytesIO(stream))[:3] == ["ftyp", "moov", "moof"]
    joined = join_chunks(ffmpeg, cut(stream, pieces=8), str(tmp_path))
    assert joined.container is containers.MP4
    assert joined.info.duration == pytest.approx(2.0, abs=0.15)
    boxes = mp4_top_level_boxes(open(joined.path, "rb"))
    assert "moof" not in boxes
    assert boxes.index("moov") < boxes.index("mdat")


def test_matroska_h264_stays_matroska(ffmpeg, tmp_path):
    stream = unseekable_stream("matroska", "h264", "opus", seconds=2.0)
    joined = join_chunks(ffmpeg, cut(stream, pieces=6), str(tmp_path))
    assert joined.container is containers.MATROSKA
    assert joined.info.video.codec == "h264"
    assert matroska_has_cues(open(joined.path, "rb"))


def test_complete_files_with_the_same_streams_are_concatenated(ffmpeg, tmp_path):
    part = unseekable_stream("webm", "vp8", "opus", seconds=1.0)
    joined = join_chunks(ffmpeg, [part, part, part], str(tmp_path))
    assert joined.files == 3
    assert joined.info.duration == pytest.approx(3.0, abs=0.15)
    assert matroska_has_cues(open(joined.path, "rb"))


def test_random_bytes_are_not_playable(ffmpeg, tmp_path):
    with pytest.raises(NotPlayable):
        join_chunks(ffmpeg, [os.urandom(5000)], str(tmp_path))


def test_a_webm_header_followed_by_garbage_is_not_playable(ffmpeg, tmp_path):
    header = fixture_chunks()[0][:60]
    with pytest.raises(NotPlayable):
        join_chunks(ffmpeg, [header, os.urandom(3000)], str(tmp_path))


def test_sniff_knows_matroska_and_mp4_as_ffmpeg_writes_them():
    assert containers.sniff(unseekable_stream("matroska", "h264", "opus")[:64]) is containers.MATROSKA
    assert containers.sniff(unseekable_stream("mp4", "h264", "aac")[:64]) is containers.MP4
