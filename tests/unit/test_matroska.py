"""Reading a live-written WebM stream's structure and writing it a seekable head."""
import struct

import pytest

from chalicelib.media import containers, ebml, live_formats, matroska
from chalicelib.media.seekable_head import write_head
from tests.conftest import fixture_chunks


def chromium_stream() -> bytes:
    return b"".join(fixture_chunks())


def clusters_of(data: bytes) -> tuple[matroska.Head, matroska.Scan]:
    head = matroska.read_head(data)
    return head, matroska.scan_clusters(data[head.size:], 0, head, matroska.Index())


def test_the_head_of_a_chromium_recording():
    head = matroska.read_head(chromium_stream())
    assert containers.sniff(head.raw) is containers.WEBM
    assert {number: track.kind for number, track in head.tracks.items()} == {1: 2, 2: 1}
    assert head.cue_track == 2  # the video
    assert head.timecode_scale == 1_000_000


def test_a_head_cut_short_asks_for_more_bytes():
    data = chromium_stream()
    head = matroska.read_head(data)
    with pytest.raises(matroska.Incomplete):
        matroska.read_head(data[:head.size])  # the first Cluster's ID is not there yet


def cue_positions(head: bytes) -> list[int]:
    at = head.rindex(matroska.CUES.to_bytes(4, "big"))  # the first is the SeekHead's entry
    _, size, start = ebml.element_at(head, at)
    positions, pos = [], start
    while pos < start + size:
        _, point_size, point = ebml.element_at(head, pos)
        inner = point
        while inner < point + point_size:
            element, length, body = ebml.element_at(head, inner)
            if element == matroska.CUE_TRACK_POSITIONS:
                for field, value in ebml.children(head[body:body + length]):
                    if field == matroska.CUE_CLUSTER_POSITION:
                        positions.append(int.from_bytes(value, "big"))
            inner = body + length
        pos = point + point_size
    return positions




def test_every_cue_of_the_new_head_points_at_a_cluster():
    data = chromium_stream()
    head, scan = clusters_of(data)
    assert scan.complete == len(data) - head.size and scan.open_cluster is None
    new_head = write_head(head, scan.index.end, scan.index.cues)
    output = new_head + data[head.size:]
    # Each CueClusterPosition, counted from the Segment's data, lands on a Cluster ID.
    segment_data = len(head.ebml) + 4 + 8
    positions = cue_positions(new_head)
    assert positions and len(positions) == len(scan.index.cues)
    for position in positions:
        element, _, _ = ebml.element_at(output, segment_data + position)
        assert element == matroska.CLUSTER


def test_the_new_head_states_the_duration_in_ticks():
    data = chromium_stream()
    head, scan = clusters_of(data)
    new_head = write_head(head, scan.index.end, scan.index.cues)
    at = new_head.index(matroska.DURATION.to_bytes(2, "big") + b"\x88")  # an 8-byte float
    assert struct.unpack(">d", new_head[at + 3:at + 11])[0] == scan.index.end
    assert head.seconds(scan.index.end) == pytest.approx(3.0, abs=0.1)


def without_clusters(data: bytes, first: int, count: int) -> bytes:
    """The stream with `count` whole clusters cut out from the `first`: every element still
    parses, but a second of the recording is missing."""
    head, scan = clusters_of(data)
    starts = [head.size + start for start, _ in scan.boundaries] + [len(data)]
    return data[:starts[first]] + data[starts[first + count]:]


def test_a_hole_in_the_audio_is_refused_even_where_every_element_parses():
    data = chromium_stream()
    head, scan = clusters_of(data)
    assert len(scan.boundaries) >= 4
    with pytest.raises(matroska.Unsupported, match=r"the audio stops for \d\.\d\d s at"):
        clusters_of(without_clusters(data, 1, 2))


def test_an_index_reads_a_state_written_before_audio_ends_were_kept():
    index = matroska.Index.from_json({"cues": [[0, 0]], "end": 9, "last_times": {"1": 3}})
    assert (index.cues, index.end, index.last_times, index.audio_ends) == ([[0, 0]], 9, {"1": 3}, {})
    assert matroska.Index.from_json(index.as_json()) == index


def walked(chunks: list[bytes]) -> bytes:
    from chalicelib.media.stream_check import StreamCheck
    return b"".join(StreamCheck(live_formats.MATROSKA).walk(iter(chunks)))


def test_the_stream_walk_passes_a_whole_recording_unchanged_in_any_cut(monkeypatch):
    from chalicelib.media import stream_check
    monkeypatch.setattr(stream_check, "WINDOW", 5000)  # many windows over a small recording
    chunks = fixture_chunks()
    assert walked(chunks) == b"".join(chunks)
    data = b"".join(chunks)
    assert walked([data[i:i + 777] for i in range(0, len(data), 777)]) == data


def test_the_stream_walk_finds_a_chunk_cut_short_and_sent_again_whole():
    from chalicelib.errors import NotPlayable
    chunks = fixture_chunks()
    with pytest.raises(NotPlayable, match=r"^the recording is damaged: element C2 among the clusters at byte 36829"):
        walked(chunks[:2] + [chunks[2][:len(chunks[2]) // 2]] + chunks[2:])
    with pytest.raises(NotPlayable, match=r"the recording is damaged: the audio stops for"):
        walked([without_clusters(chromium_stream(), 1, 2)])


def test_the_stream_walk_gives_no_verdict_on_a_finished_file():
    from chalicelib.media.seekable_head import _cues
    data = chromium_stream()
    head, scan = clusters_of(data)
    finished = data + _cues(scan.index.cues, head.cue_track, 0)  # Cues after the clusters
    assert walked([finished]) == finished


def test_the_box_walk_reads_mp4_box_headers_across_any_cut():
    from chalicelib.errors import NotPlayable
    from chalicelib.media.stream_check import BoxCheck

    def box(kind: bytes, body: bytes) -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    large = (1).to_bytes(4, "big") + b"mdat" + (16 + 5).to_bytes(8, "big") + b"12345"
    stream = box(b"ftyp", b"isom") + box(b"moov", b"x" * 30) + box(b"moof", b"y" * 9) + large
    for size in (1, 3, 7, 16, len(stream)):
        pieces = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert b"".join(BoxCheck().walk(iter(pieces))) == stream
    half = box(b"moof", b"y" * 9)
    # The moof cut short says it is 17 bytes long: the next box would start at byte 67.
    with pytest.raises(NotPlayable, match=r"no MP4 box at byte 67 "):
        list(BoxCheck().walk(iter([stream[:50], half[:12], stream[50:]])))
