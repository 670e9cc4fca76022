"""Reading a live-written WebM stream's structure and writing it a seekable head."""
import subprocess

import pytest

from chalicelib import containers, matroska
from tests.conftest import fixture_chunks
from tests.media_factory import ffmpeg, unseekable_stream


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


def test_the_new_head_gives_a_duration_and_cues_that_point_at_clusters(tmp_path):
    data = chromium_stream()
    head, scan = clusters_of(data)
    assert scan.complete == len(data) - head.size and scan.open_cluster is None
    new_head = matroska.write_head(head, scan.index.end, scan.index.cues)
    output = new_head + data[head.size:]
    path = tmp_path / "out.webm"
    path.write_bytes(output)
    probe = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True).stderr.decode()
    assert f"Duration: 00:00:0{head.seconds(scan.index.end):.2f}" in probe
    # Each CueClusterPosition, counted from the Segment's data, lands on a Cluster ID.
    segment_data = len(head.ebml) + 4 + 8
    positions = cue_positions(new_head)
    assert positions and len(positions) == len(scan.index.cues)
    for position in positions:
        element, _, _ = matroska.element_at(output, segment_data + position)
        assert element == matroska.CLUSTER


def cue_positions(head: bytes) -> list[int]:
    at = head.rindex(matroska.CUES.to_bytes(4, "big"))  # the first is the SeekHead's entry
    _, size, start = matroska.element_at(head, at)
    positions, pos = [], start
    while pos < start + size:
        _, point_size, point = matroska.element_at(head, pos)
        inner = point
        while inner < point + point_size:
            element, length, body = matroska.element_at(head, inner)
            if element == matroska.CUE_TRACK_POSITIONS:
                for field, value in matroska._children(head[body:body + length]):
                    if field == matroska.CUE_CLUSTER_POSITION:
                        positions.append(int.from_bytes(value, "big"))
            inner = body + length
        pos = point + point_size
    return positions


def test_a_finished_file_is_not_a_live_stream(tmp_path):
    path = tmp_path / "finished.webm"  # written to a file: Cues after the clusters
    subprocess.run([ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
                    "-t", "2", "-c:v", "libvpx", str(path)], check=True)
    data = path.read_bytes()
    with pytest.raises(matroska.Unsupported, match="finished file"):
        clusters_of(data)


def test_clusters_out_of_order_are_refused():
    data = unseekable_stream("webm", "vp8", None, seconds=4.0)
    head, scan = clusters_of(data)
    starts = [head.size + start for start, _ in scan.boundaries] + [len(data)]
    assert len(starts) > 3
    first, second, third = starts[1], starts[2], starts[3]
    swapped = data[:first] + data[second:third] + data[first:second] + data[third:]
    with pytest.raises(matroska.Unsupported, match="runs backwards"):
        clusters_of(swapped)


def test_a_sized_cluster_cut_short_is_resized_to_what_it_holds(tmp_path):
    data = unseekable_stream("webm", "vp8", "opus", seconds=3.0)
    head, _ = clusters_of(data)
    cut = data[:-777]
    scan = matroska.scan_clusters(cut[head.size:], 0, head, matroska.Index())
    assert scan.open_cluster is not None
    whole = scan.whole(cut[head.size:])
    path = tmp_path / "cut.webm"
    path.write_bytes(matroska.write_head(head, scan.index.end, scan.index.cues) + whole)
    result = subprocess.run([ffmpeg(), "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True)
    assert result.stderr.decode() == ""
