import io

from chalicelib import containers
from tests.conftest import fixture_chunks
from tests.media_factory import unseekable_stream


def test_sniff_tells_headers_from_continuations():
    chunks = fixture_chunks()
    assert containers.sniff(chunks[0][:64]) is containers.WEBM
    assert all(containers.sniff(c[:64]) is None for c in chunks[1:])
    assert containers.sniff(unseekable_stream("matroska", "h264", "opus")[:64]) is containers.MATROSKA
    assert containers.sniff(unseekable_stream("mp4", "h264", "aac")[:64]) is containers.MP4
    assert containers.sniff(b"hello world, this is text") is None


def test_a_header_cut_short_still_counts_as_webm():
    assert containers.sniff(fixture_chunks()[0][:6]) is containers.WEBM


def test_a_live_stream_has_no_cues():
    assert not containers.matroska_has_cues(io.BytesIO(b"".join(fixture_chunks())))
    assert not containers.matroska_has_cues(io.BytesIO(b"not a matroska file"))
