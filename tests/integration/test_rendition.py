"""The H.264/AAC rendition made in pieces, with the real ffmpeg on generated recordings.

The recordings are 12 s at 320x240 with a keyframe every second, rendered in pieces of
about 2 s: six pieces, five boundaries. What each check would catch:

- frame times equal to the source's, frame by frame: a join that lets each piece start
  where the one before ended by its own reckoning (a guessed last-frame length) drifts,
  and after a pause with no frames (the variable-rate recording) jumps by the pause;
  a frame rate conversion (ffmpeg's default for MP4) duplicates or drops frames;
- the frame count of the single pass: a cut that loses or repeats a frame at a boundary;
- audio and video ending together (50 ms): audio encoded per piece gains an AAC priming
  delay (21 ms) at each of the five boundaries;
- the avcC box: the profile and level a phone decides on; moov before mdat: +faststart.
"""
import os
import re
import subprocess
from dataclasses import asdict

import pytest

from chalicelib.errors import NotPlayable
from chalicelib.media import rendition
from chalicelib.media.ffmpeg import Ffmpeg, Packet
from chalicelib.media.rendition import Piece
from tests.inspect_media import mp4_top_level_boxes
from tests.media_factory import recording_file, unseekable_stream

TARGET, LONGEST = 2, 3  # seconds: pieces of the 12 s recordings
HIGH, LEVEL_4_1 = 100, 41  # avcC's profile_idc and level_idc


@pytest.fixture(scope="module")
def ffmpeg():
    return Ffmpeg(os.environ["FFMPEG_BINARY"])


def packets(path, stream: str) -> list[tuple[float, float, int]]:
    """(pts, duration, flags) of every packet of one stream ("v", "a"), in file order,
    with the file's own timestamps (no decoding)."""
    result = subprocess.run(
        [os.environ["FFMPEG_BINARY"], "-v", "error", "-copyts", "-i", str(path),
         "-map", f"0:{stream}:0", "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True, check=True)
    time_base, found = 1 / 1000, []
    for line in result.stdout.decode().splitlines():
        if line.startswith("#tb 0:"):
            numerator, denominator = line.split(":", 1)[1].strip().split("/")
            time_base = int(numerator) / int(denominator)
        elif line and not line.startswith("#"):
            fields = [field.strip() for field in line.split(",")]
            flags = next((int(f[2:], 16) for f in fields[6:] if f.startswith("F=")), 1)
            found.append((int(fields[2]) * time_base, int(fields[3]) * time_base, flags))
    return found


def span(path, stream: str) -> tuple[float, float]:
    """Where a stream's first kept packet starts and its last ends (AAC's priming packet,
    flagged discard, is not played)."""
    kept = [(pts, duration) for pts, duration, flags in packets(path, stream) if not flags & 4]
    return min(p for p, _ in kept), max(p + d for p, d in kept)


def first_decoded(path, stream: str) -> float:
    """When a stream's first decoded frame is shown (AAC's priming and Opus's pre-skip
    already left out, as a player leaves them out)."""
    show = "showinfo" if stream == "v" else "ashowinfo"
    result = subprocess.run(
        [os.environ["FFMPEG_BINARY"], "-hide_banner", "-copyts", "-i", str(path), "-map",
         f"0:{stream}:0", f"-{'v' if stream == 'v' else 'a'}f", show, f"-frames:{stream}", "1",
         "-f", "null", "-"], capture_output=True, check=True)
    return float(re.search(r"pts_time:(-?[\d.]+)", result.stderr.decode()).group(1))


def tone_onset(path) -> float:
    """When the audio's tone starts: the end of the silence it opens with, if any."""
    result = subprocess.run(
        [os.environ["FFMPEG_BINARY"], "-hide_banner", "-copyts", "-i", str(path), "-map", "0:a:0",
         "-af", "silencedetect=n=-50dB:d=0.005", "-f", "null", "-"], capture_output=True, check=True)
    found = re.search(r"silence_end: (-?[\d.]+)", result.stderr.decode())
    return float(found.group(1)) if found else first_decoded(path, "a")


def av_offset(path) -> float:
    return first_decoded(path, "a") - first_decoded(path, "v")


def frame_times(path) -> list[float]:
    """Presentation times of the video frames, from the first one."""
    times = sorted(pts for pts, _, _ in packets(path, "v"))
    return [t - times[0] for t in times]


def decode_errors(path) -> str:
    result = subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-i", str(path),
                             "-f", "null", "-"], capture_output=True)
    return result.stderr.decode() + ("" if result.returncode == 0 else f"exit {result.returncode}")


def avc_profile_level(path) -> tuple[int, int]:
    data = open(path, "rb").read()
    at = data.index(b"avcC") + 4  # configurationVersion, profile, compatibility, level
    return data[at + 1], data[at + 3]


def probe_text(path) -> str:
    return subprocess.run([os.environ["FFMPEG_BINARY"], "-hide_banner", "-i", str(path)],
                          capture_output=True).stderr.decode()


def _rendered(ffmpeg, work, name, **recording):
    source = recording_file(str(work / f"{name}.webm"), **recording)
    out, single = str(work / f"{name}.mp4"), str(work / f"{name}-single.mp4")
    report = rendition.render(ffmpeg, source, out, workers=2, target_seconds=TARGET,
                              max_seconds=LONGEST, work_dir=str(work))
    rendition.render_single_pass(ffmpeg, source, single)
    return source, out, single, report


@pytest.fixture(scope="module", params=["vp8", "vp9", "av1"])
def rendered(request, ffmpeg, tmp_path_factory):
    return _rendered(ffmpeg, tmp_path_factory.mktemp(request.param), request.param,
                     video=request.param, audio="opus")


def test_each_codec_renders_to_h264_high_and_aac_in_mp4_that_decodes_cleanly(ffmpeg, rendered):
    source, out, _, report = rendered
    assert len(report.pieces) == 6
    info = ffmpeg.probe(out)
    assert (info.video.codec, info.video.profile, info.audio.codec) == ("h264", "High", "aac")
    assert avc_profile_level(out) == (HIGH, LEVEL_4_1)
    assert "yuv420p(" in probe_text(out)
    assert (info.video.width, info.video.height) == (320, 240)
    assert decode_errors(out) == ""
    boxes = mp4_top_level_boxes(open(out, "rb"))
    assert boxes.index("moov") < boxes.index("mdat")
    assert not rendition.needs_rendition(info)


def test_each_codec_keeps_its_duration_frames_and_frame_times(ffmpeg, rendered):
    source, out, single, report = rendered
    assert ffmpeg.probe(out).duration == pytest.approx(ffmpeg.probe(source).duration, abs=0.1)
    assert len(packets(out, "v")) == len(packets(single, "v")) == len(packets(source, "v")) == 300
    assert sum(piece.frames for piece in report.pieces) == 300
    assert frame_times(out) == pytest.approx(frame_times(source), abs=0.0015)


def test_each_codec_starts_and_ends_audio_and_video_together(rendered):
    source, out, _, _ = rendered
    video, audio = span(out, "v"), span(out, "a")
    assert video[0] == pytest.approx(audio[0], abs=0.05)
    assert video[1] == pytest.approx(audio[1], abs=0.05)
    # as in the source, to the millisecond
    assert av_offset(out) == pytest.approx(av_offset(source), abs=0.002)


def test_a_variable_frame_rate_recording_keeps_its_timing(ffmpeg, tmp_path):
    # 1.2 s with no frame before each keyframe: what a still screen sends
    source, out, single, report = _rendered(ffmpeg, tmp_path, "vfr", keep="lt(mod(t,3),1.8)",
                                            seconds=13, keyframe_seconds=3)
    times = frame_times(source)
    assert max(b - a for a, b in zip(times, times[1:])) > 1  # the source has its pauses
    assert len(report.pieces) >= 4
    assert frame_times(out) == pytest.approx(times, abs=0.0015)
    assert len(packets(out, "v")) == len(packets(single, "v")) == len(times)
    assert ffmpeg.probe(out).duration == pytest.approx(ffmpeg.probe(source).duration, abs=0.1)
    assert span(out, "v")[1] == pytest.approx(span(out, "a")[1], abs=0.05)
    assert decode_errors(out) == ""


def test_audio_that_starts_late_stays_late(ffmpeg, tmp_path):
    source, out, single, _ = _rendered(ffmpeg, tmp_path, "late", audio_delay=0.5, seconds=6)
    assert av_offset(source) == pytest.approx(0.5, abs=0.01)
    # the tone starts where it did; before it, the AAC priming (played as silence here,
    # since the track starts late) as in the single pass
    assert tone_onset(out) - first_decoded(out, "v") == pytest.approx(av_offset(source), abs=0.005)
    assert av_offset(out) == pytest.approx(av_offset(single), abs=0.002)


def test_a_recording_without_audio_renders_video_only(ffmpeg, tmp_path):
    source = recording_file(str(tmp_path / "silent.webm"), audio=None, seconds=4)
    assert rendition.encode_audio(ffmpeg, source, str(tmp_path / "audio.m4a")) is None
    assert rendition.copy_audio(ffmpeg, source, str(tmp_path / "audio-source.mka")) is None
    assert not os.path.exists(tmp_path / "audio-source.mka")
    assert not os.path.exists(tmp_path / "audio.m4a")
    out = str(tmp_path / "silent.mp4")
    rendition.render(ffmpeg, source, out, workers=2, target_seconds=TARGET, max_seconds=LONGEST)
    info = ffmpeg.probe(out)
    assert info.audio is None and info.video.codec == "h264"
    assert len(packets(out, "v")) == 100
    assert decode_errors(out) == ""


def test_a_piece_encoded_again_gives_a_usable_rendition(ffmpeg, tmp_path):
    source = recording_file(str(tmp_path / "retry.webm"), seconds=6)
    pieces = rendition.plan_pieces(ffmpeg, source, TARGET, LONGEST)
    assert [Piece(**asdict(piece)) for piece in pieces] == pieces  # plain data for a message
    sources = rendition.split_pieces(ffmpeg, source, pieces, str(tmp_path))
    encoded = [str(tmp_path / f"piece-{piece.index}.mp4") for piece in pieces]
    for path, piece, out in zip(sources, pieces, encoded):
        rendition.encode_piece(ffmpeg, path, piece, out)
    # piece 1 again: once over its finished file, once over what a killed attempt left
    rendition.encode_piece(ffmpeg, sources[1], pieces[1], encoded[1])
    with open(encoded[1], "r+b") as half:
        half.truncate(os.path.getsize(encoded[1]) // 2)
    rendition.encode_piece(ffmpeg, sources[1], pieces[1], encoded[1])
    # the audio job reads the audio alone, copied out before the cut; mono stays mono
    audio_source = rendition.copy_audio(ffmpeg, source, str(tmp_path / "audio-source.mka"))
    assert all(ffmpeg.probe(path).audio is None for path in sources)
    copied = ffmpeg.probe(audio_source)
    assert copied.video is None and copied.audio.codec == "opus"
    assert os.path.getsize(audio_source) < os.path.getsize(source) / 4
    audio = rendition.encode_audio(ffmpeg, audio_source, str(tmp_path / "audio.m4a"))
    assert (ffmpeg.probe(audio).audio.codec, ffmpeg.probe(audio).audio.channels) == ("aac", "mono")
    out = str(tmp_path / "retry.mp4")
    rendition.assemble(ffmpeg, encoded, audio, out)
    assert decode_errors(out) == ""
    assert frame_times(out) == pytest.approx(frame_times(source), abs=0.0015)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]


def test_a_piece_given_the_wrong_file_fails_without_writing(ffmpeg, tmp_path):
    source = recording_file(str(tmp_path / "wrong.webm"), seconds=6)
    pieces = rendition.plan_pieces(ffmpeg, source, TARGET, LONGEST)
    sources = rendition.split_pieces(ffmpeg, source, pieces, str(tmp_path))
    with pytest.raises(NotPlayable, match="does not hold piece 1"):
        rendition.encode_piece(ffmpeg, sources[2], pieces[1], str(tmp_path / "out.mp4"))
    assert not os.path.exists(tmp_path / "out.mp4")


def test_pieces_out_of_order_are_refused(ffmpeg, tmp_path):
    source = recording_file(str(tmp_path / "order.webm"), seconds=6)
    pieces = rendition.plan_pieces(ffmpeg, source, TARGET, LONGEST)
    sources = rendition.split_pieces(ffmpeg, source, pieces, str(tmp_path))
    encoded = [str(tmp_path / f"piece-{piece.index}.mp4") for piece in pieces]
    for path, piece, out in zip(sources, pieces, encoded):
        rendition.encode_piece(ffmpeg, path, piece, out)
    with pytest.raises(NotPlayable, match="do not follow each other"):
        rendition.assemble(ffmpeg, [encoded[1], encoded[0], *encoded[2:]], None,
                           str(tmp_path / "out.mp4"))


def test_an_assembly_that_does_not_hold_the_plan_s_frames_fails_without_writing(ffmpeg, tmp_path):
    source = recording_file(str(tmp_path / "short.webm"), seconds=6)
    pieces = rendition.plan_pieces(ffmpeg, source, TARGET, LONGEST)
    sources = rendition.split_pieces(ffmpeg, source, pieces, str(tmp_path))
    encoded = [str(tmp_path / f"piece-{piece.index}.mp4") for piece in pieces]
    for path, piece, out in zip(sources, pieces, encoded):
        rendition.encode_piece(ffmpeg, path, piece, out)
    planned = sum(piece.frames for piece in pieces)
    # the last piece's file lost (replaced by the one before, as a stale object would be):
    # the pieces still follow each other, but the joined file lacks frames the plan has
    short = str(tmp_path / "short.mp4")
    with pytest.raises(NotPlayable, match=f"holds {planned - pieces[-1].frames} frames, the plan {planned}"):
        rendition.assemble(ffmpeg, encoded[:-1], None, short, planned)
    assert not os.path.exists(short) and not os.path.exists(short + ".partial")
    rendition.assemble(ffmpeg, encoded, None, short, planned)
    assert len(packets(short, "v")) == planned


def test_the_plan_cuts_at_keyframes_of_the_file(ffmpeg, tmp_path):
    source = recording_file(str(tmp_path / "plan.webm"), seconds=12, keyframe_seconds=1)
    pieces = rendition.plan_pieces(ffmpeg, source, target_seconds=4, max_seconds=6)
    keyframes = {round(pts, 3) for pts, _, flags in packets(source, "v") if flags & 1}
    assert [round(p.start, 3) for p in pieces] == [0.0, 4.0, 8.0]
    assert {round(p.start, 3) for p in pieces} <= keyframes
    assert [p.frames for p in pieces] == [100, 100, 100]
    assert all(p.note is None for p in pieces)


# The plan alone, on made-up packets: 25 fps, keyframes where given.

def _packets(keyframes: list[float], seconds: float) -> list[Packet]:
    frames = round(seconds * 25)
    return [Packet(n / 25, 0.04, any(abs(n / 25 - k) < 1e-9 for k in keyframes))
            for n in range(frames)]


def _plan(keyframes, seconds, target=45, longest=60):
    return rendition.cut_at_keyframes(_packets(keyframes, seconds), (1280, 720), target, longest)


def test_pieces_are_about_the_target_and_never_longer_than_the_maximum():
    pieces = _plan([2.0 * n for n in range(300)], 600)
    assert all(40 <= p.seconds <= 50 for p in pieces[:-1])
    assert pieces[-1].seconds <= 60
    assert sum(p.frames for p in pieces) == 600 * 25
    assert all(a.end == b.start and a.first_frame + a.frames == b.first_frame
               for a, b in zip(pieces, pieces[1:]))
    assert pieces[-1].end == pytest.approx(600)


def test_keyframes_rarer_than_the_maximum_make_a_longer_piece_and_say_so():
    pieces = _plan([0.0, 30.0, 130.0, 150.0], 200)
    assert [(p.start, p.end) for p in pieces] == [(0.0, 30.0), (30.0, 130.0), (130.0, 150.0),
                                                 (150.0, 200.0)]
    assert [p.note is None for p in pieces] == [True, False, True, True]
    assert "no keyframe within 60 s of 30.00 s: the next is at 130.00 s" in pieces[1].note
    last = _plan([0.0, 10.0], 100)
    assert [(p.start, p.end) for p in last] == [(0.0, 10.0), (10.0, 100.0)]
    assert "no keyframe after 10.00 s: the last piece lasts 90.0 s" in last[1].note


def test_a_recording_shorter_than_the_maximum_is_one_piece():
    assert [(p.start, p.end, p.frames) for p in _plan([0.0, 10.0, 20.0], 50)] == [(0.0, 50.0, 1250)]


def test_the_frame_fits_1080p_either_way_up_with_even_sides():
    assert rendition.output_size(3840, 2160) == (1920, 1080)
    assert rendition.output_size(1080, 2400) == (864, 1920)
    assert rendition.output_size(1365, 767) == (1364, 766)
    assert rendition.output_size(320, 240) == (320, 240)


# Which recordings need it.

def _info(ffmpeg, tmp_path, container, video, audio):
    path = tmp_path / f"source.{container}"
    path.write_bytes(unseekable_stream(container, video, audio, seconds=1.0))
    return ffmpeg.probe(str(path))


@pytest.mark.parametrize("container, video, audio, needed", [
    ("mp4", "h264", "aac", False),
    ("mp4", "h264", None, False),
    ("matroska", "h264", "opus", True),
    ("webm", "vp8", "opus", True),
    ("webm", "vp9", None, True),
    ("webm", None, "opus", False),
])
def test_only_what_an_iphone_cannot_play_needs_a_rendition(ffmpeg, tmp_path, container, video,
                                                          audio, needed):
    assert rendition.needs_rendition(_info(ffmpeg, tmp_path, container, video, audio)) is needed
