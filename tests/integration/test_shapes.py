"""Every recording shape a client sends, generated with lavfi, joined by the real ffmpeg and
checked before it counts: playable, seekable, the right length, or a clear failure."""
import os
import random

import pytest

from chalicelib.media import containers, verify
from chalicelib.errors import NotPlayable
from chalicelib.media import chunk_join
from chalicelib.media.chunk_join import JoinLimits, join_chunks
from chalicelib.media.ffmpeg import Ffmpeg
from tests.conftest import FIXTURES, fixture_chunks
from tests.inspect_media import matroska_has_cues, mp4_top_level_boxes
from tests.media_factory import cut, unseekable_stream


@pytest.fixture
def ffmpeg():
    return Ffmpeg(os.environ["FFMPEG_BINARY"])


def assert_seekable(path: str, container) -> None:
    with open(path, "rb") as joined:
        if container is containers.MP4:
            boxes = mp4_top_level_boxes(joined)
            assert boxes.index("moov") < boxes.index("mdat"), boxes
        else:
            assert matroska_has_cues(joined)


# --- shape 1: one stream cut into pieces --------------------------------------------

STREAMS = {
    "webm-vp8-opus": ("webm", "vp8", "opus", containers.WEBM),
    "webm-vp9-opus": ("webm", "vp9", "opus", containers.WEBM),
    "webm-av1-opus": ("webm", "av1", "opus", containers.WEBM),
    "webm-opus-audio-only": ("webm", None, "opus", containers.WEBM),
    "matroska-h264-opus": ("matroska", "h264", "opus", containers.MATROSKA),
    "mp4-h264-aac": ("mp4", "h264", "aac", containers.MP4),
    "mp4-h264-audio-less": ("mp4", "h264", None, containers.MP4),
}
CUTS = {"random": None, "tiny-pieces-in-the-header": [1, 1, 2, 3, 5, 8, 13, 21, 34]}


@pytest.mark.parametrize("cuts", CUTS.values(), ids=CUTS.keys())
@pytest.mark.parametrize("shape", STREAMS.values(), ids=STREAMS.keys())
def test_a_stream_cut_anywhere_becomes_one_seekable_file(ffmpeg, tmp_path, shape, cuts):
    container, video, audio, expected = shape
    stream = unseekable_stream(container, video, audio, seconds=2.0)
    chunks = cut(stream, sizes=cuts + [len(stream) // 4] * 3 if cuts else None, pieces=15)
    assert len(chunks) > 5
    joined = join_chunks(ffmpeg, chunks, str(tmp_path))
    assert (joined.container, joined.method, joined.files) == (expected, "remux", 1)
    assert joined.info.duration == pytest.approx(2.0, abs=0.15)
    assert (joined.info.video.codec if joined.info.video else None) == {"av1": "av1"}.get(video, video)
    assert (joined.info.audio.codec if joined.info.audio else None) == audio
    assert_seekable(joined.path, expected)
    if video is None:
        assert joined.content_type == expected.content_type.replace("video/", "audio/")


# --- shape 2: complete files with the same streams -----------------------------------

@pytest.mark.parametrize("container, video, audio", [("webm", "vp8", "opus"), ("mp4", "h264", "aac")])
def test_complete_files_that_match_are_concatenated_without_re_encoding(ffmpeg, tmp_path, container,
                                                                        video, audio):
    files = [unseekable_stream(container, video, audio, seconds=1.0, tone=tone)
             for tone in (300, 500, 700)]
    joined = join_chunks(ffmpeg, files, str(tmp_path))
    assert (joined.method, joined.files) == ("concat", 3)
    assert joined.info.duration == pytest.approx(3.0, abs=0.2)
    assert_seekable(joined.path, joined.container)


def test_complete_files_each_cut_into_pieces_are_still_found(ffmpeg, tmp_path):
    first = unseekable_stream("webm", "vp8", "opus", seconds=1.0, tone=300)
    second = unseekable_stream("webm", "vp8", "opus", seconds=1.0, tone=600)
    joined = join_chunks(ffmpeg, cut(first, pieces=4) + cut(second, pieces=4), str(tmp_path))
    assert (joined.method, joined.files) == ("concat", 2)
    assert joined.info.duration == pytest.approx(2.0, abs=0.2)


# --- shape 3: complete files that differ ---------------------------------------------

DIFFERENCES = {
    "resolution": dict(size="640x360"),
    "codec": dict(video="vp9"),
    "frame rate": dict(rate=15),
    "no audio track": dict(audio=None),
    "container and codecs": dict(container="mp4", video="h264", audio="aac"),
}


@pytest.mark.parametrize("difference", DIFFERENCES.values(), ids=DIFFERENCES.keys())
def test_complete_files_that_differ_are_re_encoded_to_one_format(ffmpeg, tmp_path, difference):
    base = dict(container="webm", video="vp8", audio="opus", seconds=1.0)
    files = [unseekable_stream(**base), unseekable_stream(**{**base, **difference}),
             unseekable_stream(**base)]
    joined = join_chunks(ffmpeg, files, str(tmp_path))
    assert (joined.method, joined.container) == ("reencode", containers.MP4)
    assert joined.info.duration == pytest.approx(3.0, abs=0.2)
    assert (joined.info.video.codec, joined.info.audio.codec) == ("h264", "aac")
    assert (joined.info.video.width, joined.info.video.height) == (320, 240)
    assert_seekable(joined.path, containers.MP4)


def test_a_stage_without_re_encoding_refuses_naming_the_difference(tmp_path):
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    files = [unseekable_stream("webm", "vp8", "opus", seconds=1.0),
             unseekable_stream("webm", "vp8", "opus", seconds=1.0, size="640x360")]
    with pytest.raises(NotPlayable, match="320x240.*640x360.*re-encoding is off"):
        join_chunks(ffmpeg, files, str(tmp_path), JoinLimits(allow_reencode=False))


def test_a_file_longer_than_one_re_encode_may_take_fails_at_once_saying_so(tmp_path):
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    files = [unseekable_stream("webm", "vp8", "opus", seconds=1.0),
             unseekable_stream("webm", "vp8", "opus", seconds=2.0, size="640x360")]
    with pytest.raises(NotPlayable, match=r"320x240.*640x360.*file 2 lasts 2 s, longer .*\(at most 1 s"):
        join_chunks(ffmpeg, files, str(tmp_path), JoinLimits(max_reencode_seconds=1))
    assert not list(tmp_path.glob("joined.*"))  # refused before ffmpeg started on it
    assert not list(tmp_path.glob("reencoded-*"))
    # the bound is per job (a piece), not for the whole recording (3.0x s)
    joined = join_chunks(ffmpeg, files, str(tmp_path), JoinLimits(max_reencode_seconds=3))
    assert joined.method == "reencode"


def test_files_that_would_not_fit_the_work_space_twice_fail_naming_the_space(tmp_path):
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    part = unseekable_stream("webm", "vp8", "opus", seconds=1.0)
    space = len(part) * 2  # room for the two parts, not for their join as well
    with pytest.raises(NotPlayable, match="joining 2 files needs .* of work space and the join has"):
        join_chunks(ffmpeg, [part, part], str(tmp_path), JoinLimits(free_bytes=lambda _: space))
    assert join_chunks(ffmpeg, [part, part], str(tmp_path),
                       JoinLimits(free_bytes=lambda _: space * 2)).method == "concat"


def join_and_check(ffmpeg, chunks, work_dir):
    """What the join job does before it calls a video ready."""
    joined = join_chunks(ffmpeg, chunks, str(work_dir))
    verify.check_decodes(ffmpeg, joined.path, joined.info.duration)
    return joined


def test_stream_copy_of_mismatched_files_is_caught_not_published(ffmpeg, tmp_path, monkeypatch):
    """Were the format check wrong, the concat demuxer would "succeed" with a truncated or
    broken file; the duration and decode checks must stop it."""
    monkeypatch.setattr(chunk_join, "_same_format", lambda parts: True)
    files = [unseekable_stream("webm", "vp8", "opus", seconds=1.0),
             unseekable_stream("mp4", "h264", "aac", seconds=1.0)]
    with pytest.raises(NotPlayable):
        join_and_check(ffmpeg, files, tmp_path)


# --- shape 4: anything else --------------------------------------------------------

NO_HEADER = "the first chunk does not start with a WebM, Matroska or MP4 header"
BAD = {
    "random bytes": (lambda: [os.urandom(20_000)], NO_HEADER),
    "a text file": (lambda: [b"just some notes, not a recording\n" * 100], NO_HEADER),
    "a truncated first chunk alone": (lambda: [fixture_chunks()[0][:300]],
                                      "holds no complete audio or video frame"),
    # Seeded: which error ffmpeg meets first depends on the bytes.
    "a header then random bytes": (lambda: [fixture_chunks()[0][:200], random.Random(7).randbytes(20_000)],
                                   "the recording is damaged: element B4 among the clusters at byte 201"),
    "later chunks without the first": (lambda: fixture_chunks()[1:], NO_HEADER),
    "chunks out of order": (lambda: [fixture_chunks()[i] for i in (0, 1, 3, 2, 4, 5)],
                            "the recording is damaged: the audio stops for 0.60 s at 1.02 s"),
}


@pytest.mark.parametrize("chunks, reason", BAD.values(), ids=BAD.keys())
def test_what_is_not_a_recording_fails_with_a_reason(ffmpeg, tmp_path, chunks, reason):
    with pytest.raises(NotPlayable, match=reason):
        join_and_check(ffmpeg, chunks(), tmp_path)


# --- verified and repeatable ---------------------------------------------------------

@pytest.mark.parametrize("chunks", [fixture_chunks, lambda: [unseekable_stream("mp4", "h264", "aac")] * 2],
                         ids=["webm-remux", "mp4-concat"])
def test_joining_the_same_chunks_twice_gives_the_same_bytes(ffmpeg, tmp_path, chunks):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = join_chunks(ffmpeg, chunks(), str(tmp_path / "a"))
    second = join_chunks(ffmpeg, chunks(), str(tmp_path / "b"))
    assert open(first.path, "rb").read() == open(second.path, "rb").read()


def test_long_videos_are_decode_checked_at_start_and_end(ffmpeg, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ffmpeg, "_run", lambda stream, what, **_: calls.append(stream.get_args()))
    verify.check_decodes(ffmpeg, "long.webm", duration=1800.0)
    assert [("-t" in args, "-ss" in args) for args in calls] == [(True, False), (False, True)]
    calls.clear()
    verify.check_decodes(ffmpeg, "short.webm", duration=60.0)
    assert len(calls) == 1 and "-ss" not in calls[0] and "-t" not in calls[0]


def test_a_recording_in_progress_joins_up_to_its_last_whole_frame(ffmpeg, tmp_path):
    """Every prefix of a live recording ends mid-frame; that is not a damaged recording."""
    durations = []
    for count in range(1, 7):
        work = tmp_path / str(count)
        work.mkdir()
        durations.append(join_chunks(ffmpeg, fixture_chunks()[:count], str(work)).info.duration)
    assert durations == sorted(durations) and durations[0] > 0.2
    assert durations[-1] == pytest.approx(3.0, abs=0.05)


STALLED = sorted((FIXTURES / "chromium-stalls").glob("*-*"))


@pytest.mark.parametrize("recording", STALLED, ids=[p.name for p in STALLED])
def test_real_chromium_recordings_with_capture_stalls_are_accepted(ffmpeg, tmp_path, recording):
    chunks = [path.read_bytes() for path in sorted(recording.glob("*.chunk"))]
    joined = join_chunks(ffmpeg, chunks, str(tmp_path))
    assert joined.method == "remux"
    assert joined.info.duration == pytest.approx(3.0, abs=0.3)
    assert_seekable(joined.path, joined.container)


def test_stalled_fixtures_are_present():
    assert len(STALLED) == 3


def test_fragmented_mp4_out_of_order_fails_with_the_fragment_named(ffmpeg, tmp_path):
    """The stream walk reads every moof as the bytes go into ffmpeg: fragments out of order
    fail the join by their sequence numbers, before ffmpeg's own timestamps would."""
    stream = unseekable_stream("mp4", "h264", "aac", seconds=4.0)
    boxes, at = [], 0
    while at < len(stream):
        size = int.from_bytes(stream[at:at + 4], "big")
        boxes.append(stream[at:at + size])
        at += size
    head, fragments = boxes[0] + boxes[1], [a + b for a, b in zip(boxes[2::2], boxes[3::2])]
    assert len(fragments) >= 4
    swapped = [head, fragments[0], fragments[2], fragments[1], *fragments[3:]]
    with pytest.raises(NotPlayable, match="the recording is damaged: fragment 3 at byte .* follows fragment 1"):
        join_and_check(ffmpeg, swapped, tmp_path)


def test_an_mp4_chunk_cut_short_then_sent_whole_fails_naming_the_byte(ffmpeg, tmp_path):
    stream = unseekable_stream("mp4", "h264", "aac", seconds=4.0)
    chunks = cut(stream, pieces=8)
    damaged = chunks[:3] + [chunks[3][:len(chunks[3]) // 2]] + chunks[3:]
    with pytest.raises(NotPlayable, match=r"the recording is damaged: no MP4 box at byte \d+"):
        join_and_check(ffmpeg, damaged, tmp_path)
