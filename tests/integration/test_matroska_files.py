"""The Matroska reader and writer against files ffmpeg writes and reads."""
import subprocess

import pytest

from chalicelib.media import matroska
from chalicelib.media.seekable_head import write_head
from tests.media_factory import ffmpeg, unseekable_stream
from tests.unit.test_matroska import chromium_stream, clusters_of


def test_ffmpeg_reads_the_duration_of_the_new_head(tmp_path):
    """Where the cues point is checked on the bytes (tests/unit/test_matroska.py)."""
    data = chromium_stream()
    head, scan = clusters_of(data)
    path = tmp_path / "out.webm"
    path.write_bytes(write_head(head, scan.index.end, scan.index.cues) + data[head.size:])
    probe = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True).stderr.decode()
    assert f"Duration: 00:00:0{head.seconds(scan.index.end):.2f}" in probe


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
    path.write_bytes(write_head(head, scan.index.end, scan.index.cues) + whole)
    result = subprocess.run([ffmpeg(), "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True)
    assert result.stderr.decode() == ""
