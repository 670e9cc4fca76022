import io

from chalicelib.media import containers
from tests.conftest import fixture_chunks
from tests.inspect_media import matroska_has_cues


def test_sniff_tells_headers_from_continuations():
    chunks = fixture_chunks()
    assert containers.sniff(chunks[0][:64]) is containers.WEBM
    assert all(containers.sniff(c[:64]) is None for c in chunks[1:])
    assert containers.sniff(b"hello world, this is text") is None


def test_audio_only_recordings_are_served_as_audio():
    assert containers.WEBM.content_type_for(has_video=True) == "video/webm"
    assert containers.WEBM.content_type_for(has_video=False) == "audio/webm"
    assert containers.MP4.content_type_for(has_video=False) == "audio/mp4"


def test_a_header_cut_short_still_counts_as_webm():
    assert containers.sniff(fixture_chunks()[0][:6]) is containers.WEBM


def test_a_live_stream_has_no_cues():
    assert not matroska_has_cues(io.BytesIO(b"".join(fixture_chunks())))
    assert not matroska_has_cues(io.BytesIO(b"not a matroska file"))
