"""The fragmented-MP4 reader and head writer (chalicelib.media.fmp4) against streams ffmpeg
and Chromium wrote, and files ffmpeg reads: the composed file is the new head followed by
the fragments byte for byte, as the segment join has S3 compose it."""
import json
import re
import subprocess
from pathlib import Path

import pytest

from chalicelib.media import fmp4, verify
from chalicelib.media.fmp4 import Damaged, Head, Incomplete, Index, Unsupported
from tests.inspect_media import mp4_boxes, mp4_durations, mp4_sidx
from tests.media_factory import cut, ffmpeg, fragmented_mp4, plain_mp4, unseekable_stream

CHROMIUM_MP4 = Path(__file__).resolve().parent.parent / "fixtures" / "chromium-stalls" / "mp4-vp9-opus-equal-timestamps"


def chromium_chunks() -> list[bytes]:
    chunks = [path.read_bytes() for path in sorted(CHROMIUM_MP4.glob("*.chunk"))]
    assert chunks, f"no fixture chunks in {CHROMIUM_MP4}"
    return chunks


def fragments_of(data: bytes) -> tuple[Head, fmp4.Scan]:
    head = fmp4.read_head(data)
    return head, fmp4.scan(data[head.size:], 0, head, Index())


def fold_like(chunks: list[bytes], segment_bytes: int) -> tuple[Head, Index, bytes]:
    """Scan chunks the way chalicelib.media.fold does: the head once it is whole, then scans
    from a fragment boundary, a segment cut at the first boundary segment_bytes or more after
    the last cut, the index carried through JSON (the fold state) and the head through its
    text to the next scan, which starts at that cut. Returns the head, the final index and
    the fragment bytes (the segments and the last scan's whole part)."""
    pending, head_text, segments = bytearray(), None, []
    offset, state = 0, Index().as_json()
    for chunk in chunks:
        pending += chunk
        if head_text is None:
            try:
                head_text = fmp4.read_head(pending).encoded()
            except Incomplete:
                continue
            pending = pending[Head.decoded(head_text).size:]
        scan = fmp4.scan(memoryview(pending), offset, Head.decoded(head_text), Index.from_json(state))
        cut_at = 0
        for boundary, mark in scan.boundaries:
            if boundary - cut_at >= segment_bytes:
                segments.append(bytes(pending[cut_at:boundary]))
                state = json.loads(json.dumps(scan.index.at(mark).as_json()))
                cut_at = boundary
        pending, offset = pending[cut_at:], offset + cut_at
    head = Head.decoded(head_text)
    scan = fmp4.scan(memoryview(pending), offset, head, Index.from_json(state))
    return head, scan.index, b"".join(segments) + scan.whole(memoryview(pending))


def compose(head: Head, index: Index, fragments: bytes) -> bytes:
    return fmp4.write_head(head, index, len(fragments)) + fragments


def ffmpeg_errors(path, *input_options: str, ignore_null_muxer: bool = False) -> list[str]:
    result = subprocess.run([ffmpeg(), "-v", "error", *input_options, "-i", str(path), "-f", "null", "-"],
                            capture_output=True)
    lines = result.stderr.decode().splitlines()
    # Chromium's equal timestamps make the null muxer complain about the source as well.
    return [line for line in lines if not (ignore_null_muxer and line.startswith("[null @"))]


def probed_duration(path) -> float:
    text = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True).stderr.decode()
    hours, minutes, seconds = text.split("Duration: ")[1].split(",")[0].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def moofs_read_at_open(path) -> int:
    """How many moofs ffmpeg's mov demuxer walks through to read the file's header (the
    trace gives the file's size as the end of each box it reads there; reading packets
    later, it gives none): 1 when it trusts the sidx, every one without."""
    trace = subprocess.run([ffmpeg(), "-hide_banner", "-v", "trace", "-i", str(path)],
                           capture_output=True).stderr.decode("utf-8", "replace")
    size = Path(path).stat().st_size
    return len(re.findall(rf"type:'moof' parent:'root' sz: \d+ \d+ {size}\n", trace))


def check_composed(tmp_path, source: bytes, head: Head, index: Index, fragments: bytes,
                   ignore_null_muxer: bool = False) -> bytes:
    """The composed file decodes cleanly, lasts what the index and the source say, and its
    head states that: durations, and a sidx over every fragment to the end of the file."""
    composed = compose(head, index, fragments)
    path, source_path = tmp_path / "composed.mp4", tmp_path / "source.mp4"
    path.write_bytes(composed)
    source_path.write_bytes(source)
    assert ffmpeg_errors(path, ignore_null_muxer=ignore_null_muxer) == []
    seconds = head.seconds(index.end)
    assert probed_duration(path) == pytest.approx(seconds, abs=0.05)
    verify.check_duration(probed_duration(path), probed_duration(source_path), "the source's frames")

    sidx = mp4_sidx(composed)
    reference = head.reference_track
    assert (sidx["reference_id"], sidx["timescale"]) == (reference.track_id, reference.timescale)
    assert sidx["earliest"] == index.fragments[0][0]
    assert sidx["first_byte"] == len(composed) - len(fragments)  # the first moof follows it
    assert sidx["first_byte"] + sum(size for size, *_ in sidx["references"]) == len(composed)
    moofs = [start for kind, start, _ in mp4_boxes(fragments) if kind == "moof"]
    assert len(sidx["references"]) == len(moofs) == len(index.fragments)
    assert sidx["earliest"] + sum(duration for _, duration, *_ in sidx["references"]) == \
        index.track_ends[str(reference.track_id)]
    assert [(sap, sap_type) for _, _, sap, sap_type in sidx["references"]] == \
        [(sync, sync) for _, _, _, sync, _ in index.fragments]
    # One sidx per track, side by side before the first moof: ffmpeg seeks every stream.
    kinds = [kind for kind, *_ in mp4_boxes(composed)]
    assert kinds[2:2 + len(head.tracks)] == ["sidx"] * len(head.tracks)
    assert kinds.count("sidx") == len(head.tracks)

    durations = mp4_durations(composed)
    for track_id, track in head.tracks.items():
        end = index.track_ends[str(track_id)]
        assert durations["tracks"][track_id]["mdhd"] == end
        assert durations["tracks"][track_id]["tkhd"] == pytest.approx(
            end * durations["movie_timescale"] / track.timescale, abs=1)
    longest = max(t["tkhd"] for t in durations["tracks"].values())
    assert durations["movie"] == durations["mehd"] == longest
    assert longest / durations["movie_timescale"] == pytest.approx(seconds, abs=0.01)

    assert moofs_read_at_open(path) == 1  # ffmpeg trusts the sidx instead of walking the file
    assert ffmpeg_errors(path, "-ss", str(max(0.0, seconds - 1.5)),
                         ignore_null_muxer=ignore_null_muxer) == []
    return composed


def check_incremental(data: bytes, chunks: list[bytes], segment_bytes: int) -> tuple[Head, Index, bytes]:
    """Scanned in arbitrary chunks, fold by fold, the stream gives what one scan gives."""
    head, whole_scan = fragments_of(data)
    folded_head, index, fragments = fold_like(chunks, segment_bytes)
    assert folded_head == head
    assert index.as_json() == whole_scan.index.as_json()
    assert fragments == whole_scan.whole(data[head.size:])
    return head, index, fragments


# --- the shapes recorders send --------------------------------------------------------

def test_safari_shape_h264_aac(tmp_path):
    data = unseekable_stream("mp4", "h264", "aac", seconds=5.0, size="160x120")
    head, index, fragments = check_incremental(data, cut(data, pieces=40), segment_bytes=16 * 1024)
    assert head.has_video and {t.handler for t in head.tracks.values()} == {"vide", "soun"}
    assert len(index.cues) == len(index.fragments) >= 5  # a keyframe starts each fragment
    # ffmpeg ends its stream with an mfra: not part of the fragments
    assert mp4_boxes(data)[-1][0] == "mfra" and len(fragments) < len(data) - head.size
    check_composed(tmp_path, data, head, index, fragments)
    (tmp_path / "stream.mp4").write_bytes(data)
    assert moofs_read_at_open(tmp_path / "stream.mp4") == len(index.fragments)  # no sidx: all


def test_a_ten_minute_recording(tmp_path):
    data = unseekable_stream("mp4", "h264", "aac", seconds=600.0, size="160x120")
    head, index, fragments = check_incremental(data, cut(data, pieces=300, seed=3),
                                               segment_bytes=5 * 1024 * 1024)
    assert len(index.fragments) >= 600
    assert head.seconds(index.end) == pytest.approx(600.0, abs=0.1)
    composed = check_composed(tmp_path, data, head, index, fragments)
    assert mp4_sidx(composed)["references"][-1][1] > 0


def test_chromium_video_mp4(tmp_path):
    """Chromium 156's video/mp4: VP9 and Opus, one traf per track in each moof, default-base-
    is-moof, no mfra; its fragments' sample durations fall short of the next tfdt."""
    chunks = chromium_chunks()
    data = b"".join(chunks)
    head, index, fragments = check_incremental(data, chunks, segment_bytes=64 * 1024)
    assert [t.handler for _, t in sorted(head.tracks.items())] == ["vide", "soun"]
    assert len(fragments) == len(data) - head.size  # every byte is a whole fragment
    check_composed(tmp_path, data, head, index, fragments, ignore_null_muxer=True)
    # the same chunks cut elsewhere
    check_incremental(data, cut(data, pieces=25, seed=11), segment_bytes=40 * 1024)


@pytest.mark.parametrize("codec", ["aac", "opus"])
def test_audio_only(tmp_path, codec):
    data = fragmented_mp4(None, codec, seconds=6.0, fragment_seconds=1.0)
    head, index, fragments = check_incremental(data, cut(data, pieces=20), segment_bytes=8 * 1024)
    assert not head.has_video and head.reference_track.handler == "soun"
    assert len(index.cues) == len(index.fragments) >= 5
    check_composed(tmp_path, data, head, index, fragments)


def test_a_decode_window_file_starts_at_a_keyframe_mid_stream(tmp_path):
    """What segment_join writes to check the end of a long recording: no sidx, fragments
    from a cue on."""
    data = unseekable_stream("mp4", "h264", "aac", seconds=5.0, size="160x120")
    head, scan = fragments_of(data)
    fragments = scan.whole(data[head.size:])
    time, offset = scan.index.cues[3]
    path = tmp_path / "window.mp4"
    path.write_bytes(fmp4.write_head(head, scan.index, len(fragments), seekable=False) + fragments[offset:])
    assert "sidx" not in [kind for kind, *_ in mp4_boxes(path.read_bytes())]
    assert ffmpeg_errors(path) == []


# --- the head --------------------------------------------------------------------------

def test_the_head_waits_for_the_first_moof_and_survives_its_text():
    data = unseekable_stream("mp4", "h264", "aac", seconds=5.0, size="160x120")
    head = fmp4.read_head(data)
    for length in (0, 7, 100, head.size, head.size + 7):
        with pytest.raises(Incomplete):
            fmp4.read_head(data[:length])
    assert fmp4.read_head(data[:head.size + 8]) == head
    assert Head.decoded(head.encoded()) == head
    assert head.raw == data[:head.size] and mp4_boxes(data)[2][0] == "moof"
    assert head.seconds(head.ticks(1.5)) == 1.5
    assert {t.handler: t.timescale for t in head.tracks.values()}["soun"] == 48000


def test_a_plain_mp4_is_not_a_fragmented_stream():
    with pytest.raises(Unsupported, match="plain MP4"):
        fmp4.read_head(plain_mp4())


def test_a_stream_that_is_not_mp4_is_refused():
    with pytest.raises(Unsupported, match="ftyp"):
        fmp4.read_head(unseekable_stream("webm", "vp8", None, seconds=1.0))


def test_absolute_data_offsets_are_unsupported():
    data = fragmented_mp4("h264", "aac", seconds=3.0, movflags="frag_keyframe+empty_moov")
    with pytest.raises(Unsupported, match="absolute data offsets"):
        fragments_of(data)


# --- damage -----------------------------------------------------------------------------

def _fragment_starts(data: bytes) -> list[int]:
    return [start - 8 for kind, start, _ in mp4_boxes(data) if kind == "moof"]


def test_a_missing_fragment_is_damage():
    data = unseekable_stream("mp4", "h264", "aac", seconds=5.0, size="160x120")
    starts = _fragment_starts(data)
    missing = data[:starts[2]] + data[starts[3]:]
    with pytest.raises(Damaged, match="missing"):
        fragments_of(missing)


def test_chunks_swapped_are_damage():
    data = unseekable_stream("mp4", "h264", "aac", seconds=5.0, size="160x120")
    pieces = cut(data, pieces=10, seed=5)
    pieces[4], pieces[6] = pieces[6], pieces[4]
    with pytest.raises(Damaged):
        fragments_of(b"".join(pieces))
    # and whole fragments swapped: the sequence numbers tell
    starts = _fragment_starts(data)
    swapped = data[:starts[1]] + data[starts[2]:starts[3]] + data[starts[1]:starts[2]] + data[starts[3]:]
    with pytest.raises(Damaged, match="follows fragment"):
        fragments_of(swapped)


def _with_tfdt(data: bytes, fragment: int, track_id: int, change) -> bytes:
    """data with the tfdt of one track in one fragment (0-based) changed by change(time)."""
    moof = [(start, end) for kind, start, end in mp4_boxes(data) if kind == "moof"][fragment]
    for kind, body, end in mp4_boxes(data, *moof):
        if kind != "traf":
            continue
        boxes = {k: b for k, b, _ in mp4_boxes(data, body, end)}
        if int.from_bytes(data[boxes["tfhd"] + 4:boxes["tfhd"] + 8], "big") != track_id:
            continue
        tfdt = boxes["tfdt"]
        width = 8 if data[tfdt] == 1 else 4
        time = int.from_bytes(data[tfdt + 4:tfdt + 4 + width], "big")
        return data[:tfdt + 4] + change(time).to_bytes(width, "big") + data[tfdt + 4 + width:]
    raise AssertionError("no such traf")


def test_time_running_backwards_is_damage():
    data = b"".join(chromium_chunks())
    with pytest.raises(Damaged, match="backwards"):
        fragments_of(_with_tfdt(data, 3, 1, lambda time: time - 2000))


def test_a_fragment_may_start_before_the_guessed_end_of_the_last_sample_before_it():
    """Chromium guesses the duration of each fragment's last sample: a live video/mp4
    recording's next tfdt came before that guess ran out (not in the fixture, whose guesses
    fall short). Before the last sample's own time is what is damage."""
    data = b"".join(chromium_chunks())
    _, scan = fragments_of(data)
    track = str(1)
    last_sample = scan.index.at(scan.boundaries[3][1]).track_last[track]
    start = scan.index.fragments[3][4][0][1]
    early = _with_tfdt(data, 3, 1, lambda time: last_sample + 1)
    assert start > last_sample + 1
    assert len(fragments_of(early)[1].index.fragments) == 6
    with pytest.raises(Damaged, match="backwards"):
        fragments_of(_with_tfdt(data, 3, 1, lambda time: last_sample - 1))


def test_audio_that_jumps_is_damage_and_video_that_pauses_is_not():
    data = b"".join(chromium_chunks())
    with pytest.raises(Damaged, match="audio stops"):
        fragments_of(_with_tfdt(data, 3, 2, lambda time: time + 48000 // 2))
    paused = data
    for fragment in (3, 4, 5):  # the video stops for half a second before fragment 3
        paused = _with_tfdt(paused, fragment, 1, lambda time: time + 20000 // 2)
    head, scan = fragments_of(paused)
    assert len(scan.index.fragments) == 6
    assert scan.index.fragments[3][0] - scan.index.fragments[2][0] > 20000 // 2


def test_samples_outside_their_mdat_are_damage():
    data = unseekable_stream("mp4", "h264", "aac", seconds=3.0, size="160x120")
    first_mdat = next(start for kind, start, _ in mp4_boxes(data) if kind == "mdat") - 8
    shrunk = (16).to_bytes(4, "big")  # an mdat that holds 8 bytes: the samples are beyond it
    damaged = data[:first_mdat] + shrunk + data[first_mdat + 4:]
    with pytest.raises(Damaged):
        fragments_of(damaged)


def test_a_fragment_cut_short_is_not_part_of_the_scan():
    data = unseekable_stream("mp4", "h264", "aac", seconds=5.0, size="160x120")
    head, scan = fragments_of(data)
    starts = [start - head.size for start in _fragment_starts(data)]
    short = data[head.size:head.size + starts[3] + 5000]
    partial = fmp4.scan(short, 0, head, Index())
    assert partial.complete == starts[3]
    assert [b for b, _ in partial.boundaries] == starts[:4]
    assert partial.index.as_json() == scan.index.at(scan.boundaries[3][1]).as_json()


def test_durations_beyond_32_bits_are_written_as_version_1_boxes():
    data = unseekable_stream("mp4", "h264", "aac", seconds=5.0, size="160x120")
    head, scan = fragments_of(data)
    index = scan.index.copy()
    index.track_ends = {key: end + (1 << 40) for key, end in index.track_ends.items()}
    composed = fmp4.write_head(head, index, scan.complete)
    durations = mp4_durations(composed)
    for track_id, track in head.tracks.items():
        assert durations["tracks"][track_id]["mdhd"] == index.track_ends[str(track_id)]
    assert durations["movie"] == durations["mehd"] == max(t["tkhd"] for t in durations["tracks"].values())
    assert durations["movie"] > 1 << 32
    # the rest of the moov is as it was: the mvhd, the tkhds and the mdhds grew by 12 bytes
    # each (two times and the duration widened), and a 20-byte version 1 mehd came in
    old, new = mp4_boxes(head.raw)[1], mp4_boxes(composed)[1]
    assert (new[2] - new[1]) - (old[2] - old[1]) == 5 * 12 + 20
