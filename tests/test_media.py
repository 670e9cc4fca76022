"""Joining chunks with the real ffmpeg: one stream cut anywhere, complete files, garbage."""
import io
import os

import pytest

from chalicelib import containers
from chalicelib.errors import NotPlayable
from chalicelib.media import Ffmpeg, parse_probe
from tests.conftest import fixture_chunks
from tests.media_factory import cut, unseekable_stream


@pytest.fixture
def ffmpeg():
    return Ffmpeg(os.environ["FFMPEG_BINARY"])


def test_chromium_chunks_join_into_a_seekable_webm(ffmpeg, tmp_path):
    joined = ffmpeg.join(fixture_chunks(), str(tmp_path))
    assert joined.container is containers.WEBM
    assert joined.info.duration == pytest.approx(3.0, abs=0.05)
    assert {s.codec for s in joined.info.streams} == {"vp8", "opus"}
    assert containers.matroska_has_cues(open(joined.path, "rb"))


def test_a_later_chunk_alone_is_not_a_video(ffmpeg, tmp_path):
    with pytest.raises(NotPlayable, match="header"):
        ffmpeg.join(fixture_chunks()[1:], str(tmp_path))


@pytest.mark.parametrize("sizes", [
    [1], [1, 1, 1, 1], [3, 40], [5, 7, 11, 13], None])
def test_a_stream_cut_anywhere_joins_to_its_full_length(ffmpeg, tmp_path, sizes):
    stream = unseekable_stream("webm", "vp8", "opus", seconds=2.0)
    chunks = cut(stream, sizes=sizes + [len(stream) // 3] if sizes else None)
    joined = ffmpeg.join(chunks, str(tmp_path))
    assert joined.files == 1
    assert joined.info.duration == pytest.approx(2.0, abs=0.1)
    assert containers.matroska_has_cues(open(joined.path, "rb"))


def test_chunks_given_as_block_iterators_join_the_same(ffmpeg, tmp_path):
    stream = unseekable_stream("webm", "vp8", "opus", seconds=2.0)
    chunks = [iter([piece[:10], piece[10:]]) for piece in cut(stream, pieces=5)]
    joined = ffmpeg.join(chunks, str(tmp_path))
    assert joined.info.duration == pytest.approx(2.0, abs=0.1)


def test_fragmented_mp4_becomes_mp4_with_moov_first(ffmpeg, tmp_path):
    stream = unseekable_stream("mp4", "h264", "aac", seconds=2.0)
    assert containers.mp4_top_level_boxes(io.BytesIO(stream))[:3] == ["ftyp", "moov", "moof"]
    joined = ffmpeg.join(cut(stream, pieces=8), str(tmp_path))
    assert joined.container is containers.MP4
    assert joined.info.duration == pytest.approx(2.0, abs=0.15)
    boxes = containers.mp4_top_level_boxes(open(joined.path, "rb"))
    assert "moof" not in boxes
    assert boxes.index("moov") < boxes.index("mdat")


def test_matroska_h264_stays_matroska(ffmpeg, tmp_path):
    stream = unseekable_stream("matroska", "h264", "opus", seconds=2.0)
    joined = ffmpeg.join(cut(stream, pieces=6), str(tmp_path))
    assert joined.container is containers.MATROSKA
    assert joined.info.video.codec == "h264"
    assert containers.matroska_has_cues(open(joined.path, "rb"))


def test_complete_files_with_the_same_streams_are_concatenated(ffmpeg, tmp_path):
    part = unseekable_stream("webm", "vp8", "opus", seconds=1.0)
    joined = ffmpeg.join([part, part, part], str(tmp_path))
    assert joined.files == 3
    assert joined.info.duration == pytest.approx(3.0, abs=0.15)
    assert containers.matroska_has_cues(open(joined.path, "rb"))


def test_random_bytes_are_not_playable(ffmpeg, tmp_path):
    with pytest.raises(NotPlayable):
        ffmpeg.join([os.urandom(5000)], str(tmp_path))


def test_a_webm_header_followed_by_garbage_is_not_playable(ffmpeg, tmp_path):
    header = fixture_chunks()[0][:60]
    with pytest.raises(NotPlayable):
        ffmpeg.join([header, os.urandom(3000)], str(tmp_path))


def test_probe_reads_what_ffmpeg_prints():
    info = parse_probe(
        "Input #0, matroska,webm, from 'x.webm':\n"
        "  Duration: 00:01:02.50, start: 0.000000, bitrate: 273 kb/s\n"
        "  Stream #0:0(eng): Video: vp8, yuv420p(progressive), 640x360, SAR 1:1 DAR 16:9, 20 fps, 20 tbr, 1k tbn (default)\n"
        "  Stream #0:1(eng): Audio: opus, 48000 Hz, mono, fltp (default)\n")
    assert info.duration == 62.5
    assert (info.video.codec, info.video.width, info.video.height, info.video.frame_rate) == ("vp8", 640, 360, "20")
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("opus", 48000, "mono")
