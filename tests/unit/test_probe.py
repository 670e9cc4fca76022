from chalicelib.media.probe import parse_probe


def test_probe_reads_what_ffmpeg_prints():
    info = parse_probe(
        "Input #0, matroska,webm, from 'x.webm':\n"
        "  Duration: 00:01:02.50, start: 0.000000, bitrate: 273 kb/s\n"
        "  Stream #0:0(eng): Video: vp8, yuv420p(progressive), 640x360, SAR 1:1 DAR 16:9, 20 fps, 20 tbr, 1k tbn (default)\n"
        "  Stream #0:1(eng): Audio: opus, 48000 Hz, mono, fltp (default)\n")
    assert info.duration == 62.5
    assert (info.video.codec, info.video.width, info.video.height, info.video.frame_rate) == ("vp8", 640, 360, "20")
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("opus", 48000, "mono")
    assert info.describe() == "video vp8 640x360 at 20 fps + audio opus 48000 Hz mono"


def test_a_file_ffmpeg_cannot_read_has_no_duration_and_no_streams():
    info = parse_probe("x.webm: Invalid data found when processing input\n")
    assert (info.duration, info.streams, info.video, info.audio) == (None, (), None, None)
    assert info.describe() == "no streams"


def test_ffmpeg_s_words_in_an_error_name_no_file_of_the_work_directory():
    from chalicelib.media.ffmpeg import _last_lines
    said = _last_lines(b"[in#0 @ 0x1] Error opening input: Invalid data found\n"
                       b"Error opening input file /tmp/tmpab_c/part-000000.webm.\n")
    assert said == "[in#0 @ 0x1] Error opening input: Invalid data found; Error opening input file <file>"
