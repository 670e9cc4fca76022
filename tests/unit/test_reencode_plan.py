"""Where the re-encode of complete files that differ cuts its pieces (plan_parts): pure
arithmetic on the files' probes and video packets, no process. tests/integration/
test_reencodes.py encodes such plans for real."""
import json

import pytest

from chalicelib.errors import NotPlayable
from chalicelib.media.ffmpeg import Packet
from chalicelib.media.probe import MediaInfo, Stream
from chalicelib.media.reencode import Piece, Plan, plan_parts

VIDEO = Stream("video", "vp8", width=640, height=360, frame_rate="25")
AUDIO = Stream("audio", "opus", sample_rate=48000, channels="stereo")


def info(seconds: float) -> MediaInfo:
    return MediaInfo(seconds, (VIDEO, AUDIO))


def frames(seconds: float, keyframes: list[float], first: float = 0.0) -> list[Packet]:
    """25 frames a second from `first`, keyframes at those times after it."""
    return [Packet(round(first + n / 25, 6), 0.04, n == 0 or any(abs(n / 25 - k) < 1e-6 for k in keyframes))
            for n in range(round(seconds * 25))]


def test_a_long_file_is_cut_at_keyframes_moved_onto_the_output_s_frames():
    # keyframes 10 s apart, the file's video starting 0.013 s in: offsets count from there
    packets = frames(35.0, [10.0, 20.0, 30.0], first=0.013)
    plan = plan_parts([info(35.0), info(4.0)], [packets, None], piece_seconds=10)
    assert [(p.file, p.offset, p.seconds, p.first_frame) for p in plan.pieces] == [
        (0, 0.0, 10.0, 0), (0, 10.0, 10.0, 250), (0, 20.0, 10.0, 500), (0, 30.0, 5.0, 750),
        (1, 0.0, 4.0, 0)]  # the short file is one piece
    assert [p.frames for p in plan.pieces] == [250, 250, 250, 125, 0]  # the cuts' packets; 0: whole
    assert plan.start_of(plan.pieces[4]) == 35.0
    assert (plan.describe(1), plan.describe(4)) == ("file 1 from 10.00 s", "file 2")
    assert sum(p.seconds for p in plan.pieces) == pytest.approx(39.0)


def test_a_keyframe_between_frames_of_the_output_moves_to_the_nearest():
    packets = [Packet(round(n * 0.033, 6), 0.033, n in (0, 304)) for n in range(600)]  # 30.3 fps
    plan = plan_parts([info(19.8)], [packets], piece_seconds=10)
    assert [p.offset for p in plan.pieces] == [0.0, 10.04]  # 304 x 0.033 = 10.032 s: frame 251
    assert plan.pieces[0].seconds == pytest.approx(10.04)


def test_without_packets_or_a_piece_length_each_file_is_one_piece():
    infos = [info(35.0), info(4.0)]
    for plan in (plan_parts(infos), plan_parts(infos, [frames(35.0, [10.0]), None], piece_seconds=0)):
        assert [(p.file, p.offset, p.seconds) for p in plan.pieces] == [(0, 0.0, 35.0), (1, 0.0, 4.0)]


def test_a_piece_longer_than_one_job_may_take_fails_the_plan_saying_why():
    packets = frames(700.0, [650.0])  # no keyframe for 650 s
    with pytest.raises(NotPlayable, match=r"^file 1 from 0.00 s lasts 10.8 minutes without a keyframe "
                                          r"to cut it at, longer than one re-encode job may take \(at most 10.0 minutes"):
        plan_parts([info(700.0)], [packets], piece_seconds=15, max_piece_seconds=600)
    assert max(p.seconds for p in plan_parts([info(700.0)], [frames(700.0, [float(k) for k in range(15, 700, 15)])],
                                              piece_seconds=15, max_piece_seconds=600).pieces) <= 20


def test_a_plan_stored_before_files_were_cut_reads_as_a_piece_per_file():
    plan = plan_parts([info(3.0), info(2.0)])
    stored = json.loads(plan.to_json())
    del stored["pieces"]
    assert Plan.from_json(json.dumps(stored).encode()).pieces == [Piece(0, 0, 0.0, 3.0), Piece(1, 1, 0.0, 2.0)]
    assert Plan.from_json(plan.to_json()) == plan
