"""Complete files that differ, re-encoded in steps of the join (chalicelib.reencodes and
chalicelib.media.reencode) with the real ffmpeg, over the in-memory backend with a clock
the test moves (and once over moto, through the SQS handler).

The recording: three files a recorder restarted between, 2 s at 320x240 with a tone, 2 s at
640x360 with another tone, and 1.5 s at 320x240 without audio, each a keyframe a second at
25 fps. What each check would catch:

- the join hands off and the steps keep its lease: a second join would start on the same
  chunks (the video would flicker between joins, or be joined twice);
- a step per file and one for the audio: a single invocation re-encoding everything;
- frame count (25 a second of each file) and the audio ending with the video: a file placed
  at the wrong time, or audio encoded per file gaining AAC's priming delay at every
  boundary, or the silent file's place not filled;
- only missing steps queued again after they vanish: every file re-encoded again;
- with pieces of a second, each file cut at its keyframes into a step per piece, the same
  frames at the same times as a piece per file: a cut that drops, doubles or shifts frames
  at a piece's boundary inside a file.
"""
import dataclasses
import os
import subprocess

import pytest

from chalicelib.errors import NotPlayable
from chalicelib.media import reencode as media_reencode
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.models import JoinOutcome
from chalicelib.ports import JOIN, REENCODE_AUDIO, REENCODE_PART, RENDITION
from chalicelib.reencodes import ReencodeOutcome
from tests.helpers import record, status_of
from tests.media_factory import VIDEO_CODECS, unseekable_stream

SECONDS = (2.0, 2.0, 1.5)


@pytest.fixture(scope="module")
def files() -> list[bytes]:
    return [unseekable_stream("webm", "vp8", "opus", seconds=2.0),
            unseekable_stream("webm", "vp8", "opus", seconds=2.0, size="640x360", tone=660),
            unseekable_stream("webm", "vp8", None, seconds=1.5)]


def run(services, delivery):
    request = delivery.request
    if request.kind == JOIN:
        return services.joiner.run(request.video_id, urgent=request.urgent)
    if request.kind in (REENCODE_PART, REENCODE_AUDIO):
        return services.reencodes.run(request)
    return services.renditions.run(request)


def drain(services) -> list[tuple[str, str]]:
    """Handle every due message; (kind, outcome) of each, in order."""
    done = []
    while (delivery := services.backend.queue.receive()) is not None:
        done.append((delivery.request.kind, run(services, delivery).value))
    return done


def queued(services) -> list:
    return list(iter(services.backend.queue.receive, None))


def recorded(services, files) -> tuple[int, str]:
    video_id, token = record(services, files)
    services.videos.finalize(video_id, token)
    queued(services)  # the appends' and the finalize's join requests: joined by hand below
    return video_id, token


def packets(path: str, stream: str) -> list[tuple[float, float]]:
    """(pts, duration) in seconds of each packet of the first `stream` ("v", "a")."""
    out = subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-i", path, "-map", f"0:{stream}:0",
                          "-c", "copy", "-f", "framecrc", "-"], capture_output=True, check=True).stdout
    base, found = 1 / 1000, []
    for line in out.decode().splitlines():
        if line.startswith("#tb 0:"):
            numerator, denominator = line.split(":", 1)[1].strip().split("/")
            base = int(numerator) / int(denominator)
        elif line and not line.startswith("#"):
            fields = [field.strip() for field in line.split(",")]
            found.append((int(fields[2]) * base, int(fields[3]) * base))
    return found


def check_joined(path: str) -> None:
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    info = ffmpeg.probe(path)
    assert (info.video.codec, info.audio.codec) == ("h264", "aac")
    assert (info.video.width, info.video.height) == (320, 240)  # the first file's size
    assert info.duration == pytest.approx(sum(SECONDS), abs=0.1)
    video, audio = packets(path, "v"), packets(path, "a")
    assert len(video) == sum(round(seconds * 25) for seconds in SECONDS)
    video_end = max(pts + length for pts, length in video)
    audio_end = max(pts + length for pts, length in audio)
    assert abs(video_end - audio_end) <= 0.05
    decoded = subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-i", path, "-f", "null", "-"],
                             capture_output=True)
    assert decoded.returncode == 0 and decoded.stderr == b""


def test_files_that_differ_are_re_encoded_a_step_per_file_under_the_join_s_lease(clocked, files, tmp_path):
    services = clocked
    catalog, store = services.backend.catalog, services.backend.store
    video_id, token = recorded(services, files)

    assert services.joiner.run(video_id, urgent=True) is JoinOutcome.HANDED_OFF
    steps = queued(services)
    assert sorted((d.request.kind, d.request.piece) for d in steps) == [
        (REENCODE_AUDIO, None), (REENCODE_PART, 0), (REENCODE_PART, 1), (REENCODE_PART, 2)]
    video = catalog.get(video_id)
    assert video.joining_chunks == 3 and {d.request.lease for d in steps} == {video.join_started_at}
    assert status_of(services.videos, video_id, token)["status"] == "processing"
    # while the steps run, the join is theirs: another asked for finds it being joined
    services.joiner.clock.now += services.settings.join_stall_seconds / 2
    assert services.joiner.run(video_id, urgent=True) is JoinOutcome.ALREADY_BEING_JOINED

    outcomes = [services.reencodes.run(d.request) for d in steps]
    assert outcomes[:-1] == [ReencodeOutcome.STEP_DONE] * 3
    assert outcomes[-1] is ReencodeOutcome.JOIN_ASKED  # the last asks for the join again
    assert catalog.get(video_id).joining_chunks is None
    joins = drain(services)  # and the appends' delayed join requests, now due
    assert joins[0] == (JOIN, JoinOutcome.JOINED.value)
    assert set(joins[1:]) <= {(JOIN, JoinOutcome.UP_TO_DATE.value)}  # no rendition: it plays everywhere

    status = status_of(services.videos, video_id, token)
    assert (status["status"], status["join_method"], status["container"]) == ("ready", "reencode", "mp4")
    path = tmp_path / "joined.mp4"
    store.download_file(catalog.get(video_id).compiled_key, str(path))
    check_joined(str(path))
    assert store.work_files(video_id, "reencode", 3) == set()  # removed with the sources


def test_steps_that_vanish_are_queued_again_alone_once_the_lease_lapses(clocked, files):
    services = clocked
    video_id, token = recorded(services, files)
    assert services.joiner.run(video_id, urgent=True) is JoinOutcome.HANDED_OFF
    first, *lost = queued(services)  # one step runs; the others' messages are lost
    assert services.reencodes.run(first.request) is ReencodeOutcome.STEP_DONE
    services.joiner.clock.now += services.settings.join_stall_seconds + 1
    assert status_of(services.videos, video_id, token)["status"] == "processing"
    asked = queued(services)  # the status poll found the join lost and asked again
    assert asked and {d.request.kind for d in asked} == {JOIN}
    assert services.joiner.run(video_id, urgent=True) is JoinOutcome.HANDED_OFF
    again = queued(services)
    key = lambda d: (d.request.kind, d.request.piece or 0)  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, lost))  # not the one that was done
    # the lost steps' messages, delivered late, are for a join that is over
    assert services.reencodes.run(lost[0].request) is ReencodeOutcome.OVER
    for delivery in again:
        services.reencodes.run(delivery.request)
    assert drain(services)[0] == (JOIN, JoinOutcome.JOINED.value)


def test_a_file_that_cannot_be_encoded_fails_the_join_naming_it(clocked, files):
    services = clocked
    store = services.backend.store
    video_id, token = recorded(services, files)
    assert services.joiner.run(video_id, urgent=True) is JoinOutcome.HANDED_OFF
    store.objects[store.work_key(video_id, "reencode", 3, "file-00001")] = b"not a video"
    outcomes = {(d.request.kind, d.request.piece): services.reencodes.run(d.request)
                for d in queued(services)}
    assert outcomes[(REENCODE_PART, 1)] is ReencodeOutcome.FAILED
    status = status_of(services.videos, video_id, token)
    assert status["status"] == "failed" and status["error"].startswith("file 2: ")
    assert store.work_files(video_id, "reencode", 3) == set()
    assert queued(services) == []


def test_the_join_s_steps_go_through_the_sqs_handler_on_moto(client, files):
    """The same over moto and app.join_videos: the steps' messages keep their lease."""
    import app as app_module
    from tests.helpers import body
    from tests.integration.test_renditions import run_queue
    created = body(client.http.post("/create_video"))
    video_id, auth = created["video_id"], {"Authorization": f"Bearer {created['upload_token']}"}
    for data in files[:2]:
        answer = client.http.post(f"/append_video/{video_id}", body=data,
                                  headers={**auth, "Content-Type": "video/webm"})
        assert answer.status_code == 200, answer.body
    assert client.http.post(f"/videos/{video_id}/finalize", headers=auth).status_code == 200
    kinds = run_queue()
    assert kinds.count(REENCODE_PART) == 2 and kinds.count(REENCODE_AUDIO) == 1
    assert RENDITION not in kinds  # H.264/AAC in MP4 plays everywhere
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert (status["status"], status["join_method"], status["video_codec"]) == ("ready", "reencode", "h264")
    store = app_module.services().backend.store
    assert store.work_files(video_id, "reencode", 2) == set()


def test_a_file_s_piece_starts_where_the_file_does_and_a_silent_file_is_filled(tmp_path):
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    paths = []
    for n, data in enumerate([unseekable_stream("webm", "vp8", None, seconds=1.0),
                              unseekable_stream("webm", None, "opus", seconds=1.0)]):
        paths.append(str(tmp_path / f"in-{n}.webm"))
        with open(paths[-1], "wb") as out:
            out.write(data)
    plan = media_reencode.plan_parts([ffmpeg.probe(path) for path in paths])
    assert media_reencode.Plan.from_json(plan.to_json()) == plan  # plain data for a message
    assert [(part.video, part.audio) for part in plan.parts] == [(True, False), (False, True)]
    second = str(tmp_path / "piece-1.mp4")
    media_reencode.encode_part(ffmpeg, paths[1], plan, plan.pieces[1], second)  # no video: black
    assert ffmpeg.start_time(second) == pytest.approx(plan.parts[1].start, abs=0.002)
    assert len(packets(second, "v")) == 25
    media_reencode.encode_part(ffmpeg, paths[1], plan, plan.pieces[1], second)  # again: replaced
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]


def one_second_pieces(services):
    """Pieces of about a second (the files have a keyframe every second): each file is cut."""
    services.reencodes.settings = dataclasses.replace(services.reencodes.settings,
                                                      rendition_piece_seconds=1)


def test_long_files_are_cut_at_keyframes_a_step_per_piece(clocked, files, tmp_path):
    services = clocked
    one_second_pieces(services)
    video_id, token = recorded(services, files)
    assert services.joiner.run(video_id, urgent=True) is JoinOutcome.HANDED_OFF
    steps = queued(services)
    # 2 s, 2 s and 1.5 s files with keyframes at 0 and 1 s: two pieces each
    assert sorted(d.request.piece for d in steps if d.request.kind == REENCODE_PART) == list(range(6))
    stored = services.backend.store.work_files(video_id, "reencode", 3)
    assert {f"file-{n:05d}" for n in range(6)} <= stored  # each piece's own source, not the files
    for delivery in steps:
        services.reencodes.run(delivery.request)
    assert drain(services)[0] == (JOIN, JoinOutcome.JOINED.value)
    path = tmp_path / "joined.mp4"
    services.backend.store.download_file(services.backend.catalog.get(video_id).compiled_key, str(path))
    check_joined(str(path))  # every frame once, the audio ending with the video


def test_a_piece_that_cannot_be_encoded_fails_the_join_naming_its_file_and_place(clocked, files):
    services = clocked
    one_second_pieces(services)
    store = services.backend.store
    video_id, token = recorded(services, files)
    assert services.joiner.run(video_id, urgent=True) is JoinOutcome.HANDED_OFF
    store.objects[store.work_key(video_id, "reencode", 3, "file-00003")] = b"not a video"
    for delivery in queued(services):
        services.reencodes.run(delivery.request)
    status = status_of(services.videos, video_id, token)
    assert status["status"] == "failed" and status["error"].startswith("file 2 from 1.00 s: ")


def test_pieces_hold_the_frames_of_a_piece_per_file_at_the_same_times(files, tmp_path):
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    paths = []
    for n, data in enumerate(files):
        paths.append(str(tmp_path / f"in-{n}.webm"))
        with open(paths[-1], "wb") as out:
            out.write(data)
    inputs = [(path, ffmpeg.probe(path)) for path in paths]
    plan = media_reencode.plan_parts([info for _, info in inputs],
                                     media_reencode.file_packets(ffmpeg, inputs, 1), 1)
    assert [(p.file, p.offset) for p in plan.pieces] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert media_reencode.Plan.from_json(plan.to_json()) == plan
    whole, cut = str(tmp_path / "whole" / "out.mp4"), str(tmp_path / "cut" / "out.mp4")
    for out, seconds in ((whole, 0), (cut, 1)):
        os.makedirs(os.path.dirname(out))
        media_reencode.reencode(ffmpeg, inputs, out, piece_seconds=seconds)
    # in presentation order: each piece's encoder starts a new group of frames at its cut
    assert sorted(pts for pts, _ in packets(cut, "v")) == sorted(pts for pts, _ in packets(whole, "v"))
    check_joined(cut)


def test_a_piece_longer_than_one_job_may_take_fails_the_plan_before_any_encode(files, tmp_path):
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    path = str(tmp_path / "in.webm")
    with open(path, "wb") as out:
        out.write(files[0])
    inputs = [(path, ffmpeg.probe(path))] * 2
    packets_of = media_reencode.file_packets(ffmpeg, inputs, 1)
    # cut into pieces of a second, no piece is longer than a second: within the bound
    plan = media_reencode.plan_parts([info for _, info in inputs], packets_of, 1, max_piece_seconds=1.5)
    assert max(piece.seconds for piece in plan.pieces) <= 1.5
    with pytest.raises(NotPlayable, match=r"^file 1 lasts 2 s, longer than one re-encode job"):
        media_reencode.plan_parts([info for _, info in inputs], max_piece_seconds=1.5)


def test_a_piece_whose_frames_stop_before_the_next_keyframe_holds_its_last_frame(tmp_path):
    """A screen recording sends no frames while nothing moves: the first second's frames stop
    at 0.56 s. Cut at the keyframe at 1 s, its piece still holds 25 frames, as the whole
    file's encode does (it holds the frame at 0.56 s until 1 s)."""
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    sparse = str(tmp_path / "sparse.webm")
    subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25", "-t", "2",
                    "-vf", "select='not(between(t,0.6,0.99))'", "-fps_mode", "passthrough",
                    *VIDEO_CODECS["vp8"], "-force_key_frames", "expr:gte(t,n_forced)", sparse],
                   check=True, capture_output=True)
    frames = ffmpeg.video_packets(sparse)
    assert len(frames) == 40  # 50 frames less the 10 dropped
    assert [(p.pts, p.keyframe) for p in frames[14:16]] == [(0.56, False), (1.0, True)]
    other = str(tmp_path / "other.webm")
    with open(other, "wb") as out:
        out.write(unseekable_stream("webm", "vp8", None, seconds=1.0, size="640x360"))
    inputs = [(path, ffmpeg.probe(path)) for path in (sparse, other)]
    whole, cut = str(tmp_path / "whole" / "out.mp4"), str(tmp_path / "cut" / "out.mp4")
    for out, seconds in ((whole, 0), (cut, 1)):
        os.makedirs(os.path.dirname(out))
        media_reencode.reencode(ffmpeg, inputs, out, piece_seconds=seconds)
    assert len(packets(cut, "v")) == len(packets(whole, "v")) == 75
    assert sorted(pts for pts, _ in packets(cut, "v")) == sorted(pts for pts, _ in packets(whole, "v"))


def test_a_cut_that_does_not_hold_its_piece_s_frames_fails_naming_the_piece(files, tmp_path):
    """split_file counts each cut's frames against the plan: a plan that no longer matches
    the file (here: its second piece told to hold a frame more) stops before any encode."""
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    path = str(tmp_path / "in.webm")
    with open(path, "wb") as out:
        out.write(files[0])
    inputs = [(path, ffmpeg.probe(path))] * 2
    plan = media_reencode.plan_parts([info for _, info in inputs],
                                     media_reencode.file_packets(ffmpeg, inputs, 1), 1)
    second = plan.pieces_of(0)[1]
    cuts = media_reencode.split_file(ffmpeg, path, plan, 0, str(tmp_path))
    assert [len(ffmpeg.video_packets(cut)) for cut in cuts] == [p.frames for p in plan.pieces_of(0)]
    wrong = dataclasses.replace(plan, pieces=[dataclasses.replace(p, frames=p.frames + 1) if p == second
                                              else p for p in plan.pieces])
    with pytest.raises(NotPlayable, match=rf"^the cut of file 1 from 1.00 s holds {second.frames} "
                                          rf"frames, not {second.frames + 1}$"):
        media_reencode.split_file(ffmpeg, path, wrong, 0, str(tmp_path))
