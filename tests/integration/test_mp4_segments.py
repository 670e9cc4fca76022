"""Fragmented MP4 (Safari's MediaRecorder shape: H.264/AAC, an empty moov, one fragment a
second, default-base-is-moof) folded while it is recorded and composed by S3 copies, against
moto's S3 and DynamoDB with the real ffmpeg; and the shapes the fold does not take, joined
through ffmpeg with the reason in the status.

The checks that matter: the composed MP4 holds exactly the recorder's packets (framemd5 of
a stream copy), states its duration in the moov, carries a sidx that reaches the end of the
file (what lets a player seek without walking every fragment), and decodes at its start,
in the middle and at its end.
"""
import io

import pytest

from chalicelib.media import fmp4
from chalicelib.media.fold import SEGMENT_BYTES, Extension
from tests.helpers import object_bytes, record, status_of
from tests.inspect_media import mp4_durations, mp4_sidx, mp4_top_level_boxes
from tests.integration.test_segments import ChunkReads, decode_errors, in_chunks, packets
from tests.media_factory import fragmented_mp4, plain_mp4, unseekable_stream


def safari_recording() -> bytes:
    """About 19 MB: three segments and some."""
    data = unseekable_stream("mp4", "h264", "aac", seconds=30.0, video_bitrate="5M")
    assert len(data) > 3 * SEGMENT_BYTES
    return data


def compiled(services, video_id: int) -> bytes:
    return object_bytes(services.backend.catalog.get(video_id).compiled_key)


def test_a_fragmented_mp4_folded_while_recording_is_composed_by_copies(on_moto, tmp_path):
    services = on_moto
    catalog, store = services.backend.catalog, services.backend.store
    data = safari_recording()
    chunks = in_chunks(data)  # 300 kB cuts: nowhere near the box boundaries
    video_id, token = record(services, chunks[:-2], fold_every=5)
    services.joiner.folder.fold(catalog.get(video_id))  # the waiting join's last fold
    folded = catalog.get(video_id)
    assert folded.segment_count == 3
    state = services.joiner.folder.state(folded)
    assert state.format.name == "fragmented mp4"
    extension = Extension.from_json(store.read_extension(video_id, 3), state.format)
    for chunk in chunks[-2:]:
        services.videos.append(video_id, token, chunk)
    reads = ChunkReads()
    assert services.joiner.run(video_id) == "joined"
    assert 0 < len(reads.keys) <= len(chunks) - extension.chunk  # only what came after
    status = status_of(services.videos, video_id, token)
    assert (status["status"], status["join_method"], status["container"]) == ("ready", "segments", "mp4")
    assert (status["video_codec"], status["audio_codec"]) == ("h264", "aac")
    assert status["content_type"] == "video/mp4"
    assert "segments_declined" not in status
    assert status["duration"] == pytest.approx(30.0, abs=0.1)
    output = compiled(services, video_id)
    assert status["byte_size"] == len(output)
    assert packets(output, tmp_path, "out.mp4") == packets(data, tmp_path, "in.mp4")
    # The recorder's ftyp and moov, then the index, then the fragments byte for byte (the
    # mfra ffmpeg writes when it stops is left out: the sidx replaces it).
    boxes = mp4_top_level_boxes(io.BytesIO(output))
    # One sidx per track (video, audio): Chromium seeks each stream by its own.
    assert boxes[:4] == ["ftyp", "moov", "sidx", "sidx"] and set(boxes[4:]) == {"moof", "mdat"}
    head = fmp4.read_head(data)
    fragments = fmp4.scan(data[head.size:], 0, head, fmp4.Index())
    assert output.endswith(data[head.size:head.size + fragments.complete])
    durations = mp4_durations(output)
    timescale = durations["movie_timescale"]
    assert durations["movie"] / timescale == pytest.approx(30.0, abs=0.1)
    assert durations["mehd"] / timescale == pytest.approx(30.0, abs=0.1)
    sidx = mp4_sidx(output)
    # It indexes every fragment, and reaches exactly the end of the file.
    assert sidx["first_byte"] + sum(ref[0] for ref in sidx["references"]) == len(output)
    assert len(sidx["references"]) == boxes.count("moof") == 30
    for options in ((), ("-ss", "15"), ("-ss", "28")):
        assert decode_errors(output, tmp_path, *options) == "", options
    assert status["poster_url"]


def test_an_audio_only_fragmented_mp4_is_composed_too(on_moto, tmp_path):
    services = on_moto
    data = fragmented_mp4(video=None, audio="aac", seconds=700.0, fragment_seconds=1)
    assert len(data) > SEGMENT_BYTES
    video_id, token = record(services, in_chunks(data), fold_every=5)
    assert services.joiner.run(video_id) == "joined"
    status = status_of(services.videos, video_id, token)
    assert (status["join_method"], status["container"], status["content_type"]) == (
        "segments", "mp4", "audio/mp4")
    assert status.get("video_codec") is None and status["audio_codec"] == "aac"
    assert status["duration"] == pytest.approx(700.0, abs=0.2)
    output = compiled(services, video_id)
    assert packets(output, tmp_path, "out.mp4") == packets(data, tmp_path, "in.mp4")
    sidx = mp4_sidx(output)
    assert sidx["first_byte"] + sum(ref[0] for ref in sidx["references"]) == len(output)
    assert decode_errors(output, tmp_path, "-ss", "695") == ""


def test_a_fragmented_mp4_with_a_missing_fragment_fails_with_the_byte_named(on_moto):
    services = on_moto
    data = safari_recording()
    head = fmp4.read_head(data)
    scan = fmp4.scan(data[head.size:], 0, head, fmp4.Index())
    (start, _), (end, _) = scan.boundaries[20], scan.boundaries[21]
    damaged = data[:head.size + start] + data[head.size + end:]  # fragment 20 lost
    video_id, token = record(services, in_chunks(damaged), fold_every=5)
    assert services.joiner.run(video_id) == "failed"
    status = status_of(services.videos, video_id, token)
    assert status["status"] == "failed"
    assert "byte" in status["error"]


@pytest.mark.parametrize("shape, reason", [
    ("absolute offsets", "absolute"),  # frag_keyframe+empty_moov without default_base_moof
    ("not fragmented", "not fragmented"),
])
def test_an_mp4_the_fold_does_not_take_goes_through_ffmpeg_and_says_why(on_moto, shape, reason):
    services = on_moto
    if shape == "absolute offsets":
        data = fragmented_mp4(seconds=20.0, movflags="frag_keyframe+empty_moov")
    else:
        data = plain_mp4(seconds=20.0)
    chunks = [data[i:i + 50_000] for i in range(0, len(data), 50_000)]
    video_id, token = record(services, chunks)
    assert services.joiner.run(video_id) == "joined"
    status = status_of(services.videos, video_id, token)
    assert status["join_method"] in ("remux", "concat")
    assert reason in status["segments_declined"]
