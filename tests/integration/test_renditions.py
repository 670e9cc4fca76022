"""The MP4 rendition wired end to end on moto with the real ffmpeg: a VP8/Opus recording is
appended, finalized and joined; the join asks for its rendition (a message of kind
rendition on the join queue, handled by the same SQS handler); the rendition job makes an
H.264/AAC MP4 that decodes and lasts as long as the joined video, served by
GET /get_video/<id>/?format=mp4. An H.264/AAC recording gets no rendition job: the
original is what ?format=mp4 serves. Short, small recordings keep this fast."""
import dataclasses
import os
import subprocess

import pytest

from chalice.local import LambdaContext

import app as app_module
from chalicelib.media import rendition
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.ports import JOIN, RENDITION, RENDITION_ASSEMBLE, RENDITION_AUDIO, RENDITION_PIECE
from chalicelib.renditions import RenditionOutcome
from chalicelib.steps import AUDIO, TRANSFERS_AT_ONCE, WorkFiles
from devtools.worker import sqs_event
from tests.helpers import body
from tests.media_factory import cut, fragmented_mp4, unseekable_stream


def record(client, data: bytes, content_type: str) -> tuple[int, dict]:
    created = body(client.http.post("/create_video"))
    video_id, auth = created["video_id"], {"Authorization": f"Bearer {created['upload_token']}"}
    for chunk in cut(data, pieces=4):
        answer = client.http.post(f"/append_video/{video_id}", body=chunk,
                                  headers={**auth, "Content-Type": content_type})
        assert answer.status_code == 200, answer.body
    assert client.http.post(f"/videos/{video_id}/finalize", headers=auth).status_code == 200
    return video_id, auth


def run_queue() -> list[str]:
    """Every queued message through app.join_videos (as the SQS trigger hands them over);
    the kinds of the messages handled, in order."""
    queue, kinds = app_module.services().backend.queue, []
    while (delivery := queue.receive()) is not None:
        kinds.append(delivery.request.kind)
        answer = app_module.join_videos(sqs_event(delivery.body, delivery.receipt),
                                        LambdaContext("join_videos", memory_size=1024))
        assert not answer["batchItemFailures"], delivery.body
        delivery.acknowledge()
    return kinds


def download(key: str, path) -> str:
    app_module.services().backend.store.download_file(key, str(path))
    return str(path)


def decode_errors(path: str) -> str:
    return subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-i", path, "-f", "null", "-"],
                          capture_output=True, timeout=60).stderr.decode()


@pytest.fixture
def one_second_pieces():
    """Pieces of about a second (the generated recordings have a keyframe every second):
    a 3 s recording is made in three."""
    job = app_module.services().renditions
    before = job.settings
    job.settings = dataclasses.replace(before, rendition_piece_seconds=1)
    yield
    job.settings = before


def test_a_vp8_opus_recording_gets_an_h264_aac_mp4_made_in_pieces_that_plays_as_long(
        client, tmp_path, one_second_pieces):
    video_id, auth = record(client, unseekable_stream("webm", "vp8", "opus", seconds=3.0), "video/webm")
    kinds = run_queue()
    assert RENDITION in kinds and kinds.index(RENDITION) > kinds.index(JOIN)
    # the plan, then a message per piece and one for the audio, then the assembly, once
    steps = kinds[kinds.index(RENDITION):]
    assert sorted(steps[1:-1]) == [RENDITION_AUDIO] + [RENDITION_PIECE] * 3
    assert steps[-1] == RENDITION_ASSEMBLE and kinds.count(RENDITION_ASSEMBLE) == 1
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["status"] == "ready" and status["video_codec"] == "vp8"
    [rendition] = status["renditions"]
    assert (rendition["format"], rendition["state"]) == ("mp4", "ready")
    assert (rendition["video_codec"], rendition["audio_codec"]) == ("h264", "aac")
    assert "error" not in rendition and rendition["byte_size"] > 0

    served = client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth)
    assert served.status_code == 302
    assert ".h264.mp4" in served.headers["Location"]
    assert body(served)["content_type"] == "video/mp4"
    record_ = app_module.services().backend.catalog.get(video_id)
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])
    mp4 = download(record_.rendition.key, tmp_path / "rendition.mp4")
    original = download(record_.compiled_key, tmp_path / "original.webm")
    info = ffmpeg.probe(mp4)
    assert (info.video.codec, info.audio.codec) == ("h264", "aac")
    assert abs(info.duration - ffmpeg.probe(original).duration) <= 0.1
    assert decode_errors(mp4) == ""
    assert os.path.getsize(mp4) == rendition["byte_size"]
    # the original is still the default answer
    assert ".webm" in client.http.get(f"/get_video/{video_id}/", headers=auth).headers["Location"]
    # the same rendition asked for again does nothing
    assert app_module.services().renditions.plan(video_id).value == "rendered already"
    # a finished video keeps the compiled video, its poster and the rendition (the steps'
    # files are gone); a delete takes them all
    store = app_module.services().backend.store
    kept = sorted(item["Key"] for item in store.client.list_objects_v2(
        Bucket=store.bucket, Prefix=f"videos/{video_id}/").get("Contents", []))
    assert [key.rsplit("/", 2)[-2] for key in kept] == ["compiled"] * 3
    assert any(key.endswith(".h264.mp4") for key in kept)
    assert client.http.delete(f"/videos/{video_id}", headers=auth).status_code == 204
    assert store.client.list_objects_v2(Bucket=store.bucket,
                                        Prefix=f"videos/{video_id}/").get("Contents", []) == []


def test_an_h264_aac_recording_gets_no_rendition_job_and_its_original_is_the_mp4(client):
    video_id, auth = record(client, fragmented_mp4("h264", "aac", seconds=2.0), "video/mp4")
    assert RENDITION not in run_queue()
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert (status["status"], status["container"], status["renditions"]) == ("ready", "mp4", [])
    served = client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth)
    assert served.status_code == 302
    location = served.headers["Location"]
    assert f"videos/{video_id}/compiled/" in location and ".mp4" in location
    assert ".h264.mp4" not in location
    assert run_queue() == []  # nor did the GET ask for one


def run_until(kind: str) -> list:
    """Handle messages until one of `kind` is received; that one is returned, not handled."""
    queue = app_module.services().backend.queue
    while (delivery := queue.receive()) is not None:
        if delivery.request.kind == kind:
            return delivery
        answer = app_module.join_videos(sqs_event(delivery.body, delivery.receipt),
                                        LambdaContext("join_videos", memory_size=1024))
        assert not answer["batchItemFailures"], delivery.body
        delivery.acknowledge()
    raise AssertionError(f"no {kind} message")


def test_a_lost_piece_is_made_again_alone_when_the_rendition_is_asked_for_again(client, one_second_pieces):
    video_id, auth = record(client, unseekable_stream("webm", "vp8", "opus", seconds=3.0), "video/webm")
    lost = run_until(RENDITION_PIECE)
    lost.acknowledge()  # its invocation died and the message with it (after the last retry)
    assert RENDITION_ASSEMBLE not in run_queue()  # the other steps finish; no assembly
    services = app_module.services()
    assert services.backend.catalog.get(video_id).current_rendition().state.value == "pending"
    # asked again (a GET once it stalls): the plan stored is reused, the lost piece alone runs
    assert services.renditions.plan(video_id).value.startswith("planned")
    queue = services.backend.queue
    again = queue.receive()
    assert (again.request.kind, again.request.piece) == (RENDITION_PIECE, lost.request.piece)
    assert queue.receive() is None
    queue.schedule_steps([again.request])
    again.acknowledge()
    assert run_queue() == [RENDITION_PIECE, RENDITION_ASSEMBLE]
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["renditions"][0]["state"] == "ready"
    assert client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth).status_code == 302


def test_a_piece_that_cannot_be_encoded_fails_the_rendition_and_the_other_steps_stop(client, one_second_pieces):
    video_id, auth = record(client, unseekable_stream("webm", "vp8", "opus", seconds=3.0), "video/webm")
    first = run_until(RENDITION_PIECE)
    store = app_module.services().backend.store
    chunks = app_module.services().backend.catalog.get(video_id).compiled_chunks
    source = store.work_key(video_id, "rendition", chunks, f"source-{first.request.piece:05d}.mkv")
    store.client.put_object(Bucket=store.bucket, Key=source, Body=b"not a piece of video")
    app_module.services().backend.queue.schedule_steps([first.request])
    first.acknowledge()
    assert RENDITION_ASSEMBLE not in run_queue()
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    [rendition] = status["renditions"]
    assert rendition["state"] == "failed"
    assert f"piece {first.request.piece}" in rendition["error"]
    refused = client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth)
    assert (refused.status_code, body(refused)["Code"]) == (422, "RenditionUnavailable")
    assert store.work_files(video_id, "rendition", chunks) == set()


def test_an_h264_opus_matroska_recording_s_rendition_copies_the_video_and_encodes_the_audio(client, tmp_path):
    video_id, auth = record(client, unseekable_stream("matroska", "h264", "opus", seconds=3.0),
                            "video/x-matroska;codecs=avc1,opus")
    kinds = run_queue()
    steps = kinds[kinds.index(RENDITION):]
    assert steps == [RENDITION, RENDITION_AUDIO, RENDITION_ASSEMBLE]  # no piece to encode
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert (status["container"], status["video_codec"], status["audio_codec"]) == ("matroska", "h264", "opus")
    [rendition] = status["renditions"]
    assert (rendition["state"], rendition["video_codec"], rendition["audio_codec"]) == ("ready", "h264", "aac")
    record_ = app_module.services().backend.catalog.get(video_id)
    mp4 = download(record_.rendition.key, tmp_path / "rendition.mp4")
    original = download(record_.compiled_key, tmp_path / "original.mkv")
    ffmpeg = Ffmpeg(os.environ["FFMPEG_BINARY"])

    def video_crcs(path):  # each video packet's checksum: the same bytes, not re-encoded
        out = subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-i", path, "-map", "0:v:0",
                              "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "framecrc", "-"],
                             capture_output=True, check=True).stdout.decode()
        return [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if line and not line.startswith("#")]
    assert video_crcs(mp4) == video_crcs(original)
    assert abs(ffmpeg.probe(mp4).duration - ffmpeg.probe(original).duration) <= 0.1
    assert decode_errors(mp4) == ""


@pytest.mark.parametrize("container, codec, content_type", [
    ("webm", "vp8", "video/webm"),  # pieces to encode after the audio is done
    ("matroska", "h264", "video/x-matroska;codecs=avc1,opus"),  # none: the plan queues the assembly
])
def test_the_audio_is_queued_before_the_video_is_cut_and_may_finish_before_the_plan(
        client, monkeypatch, one_second_pieces, container, codec, content_type):
    video_id, auth = record(client, unseekable_stream(container, codec, "opus", seconds=3.0), content_type)
    plan = run_until(RENDITION)
    services = app_module.services()
    queue, store = services.backend.queue, services.backend.store
    chunks = services.backend.catalog.get(video_id).compiled_chunks
    stored_when_queued = []
    schedule = queue.schedule_steps

    def audio_done_at_once(requests):
        """The audio step, as fast as it could be: run the moment it is queued."""
        for request in requests:
            if request.kind == RENDITION_AUDIO:
                stored_when_queued.append(sorted(store.work_files(video_id, "rendition", chunks)))
                assert services.renditions.run(request) is RenditionOutcome.STEP_DONE
            else:
                schedule([request])
    monkeypatch.setattr(queue, "schedule_steps", audio_done_at_once)
    answer = app_module.join_videos(sqs_event(plan.body, plan.receipt),
                                    LambdaContext("join_videos", memory_size=1024))
    assert not answer["batchItemFailures"]
    plan.acknowledge()
    monkeypatch.undo()
    assert stored_when_queued == [["audio-source.mka"]]  # nor the plan nor a piece yet
    kinds = run_queue()
    assert kinds.count(RENDITION_ASSEMBLE) == 1 and kinds[-1] == RENDITION_ASSEMBLE
    assert RENDITION_AUDIO not in kinds  # it ran once, early
    [rendition] = body(client.http.get(f"/videos/{video_id}", headers=auth))["renditions"]
    assert (rendition["state"], rendition["video_codec"], rendition["audio_codec"]) == ("ready", "h264", "aac")


def test_the_assembly_streams_the_mp4_never_holding_every_piece_and_writes_what_a_local_join_writes(
        client, tmp_path, monkeypatch, one_second_pieces):
    video_id, auth = record(client, unseekable_stream("webm", "vp8", "opus", seconds=12.0), "video/webm")
    assembly = run_until(RENDITION_ASSEMBLE)
    services = app_module.services()
    store, chunks = services.backend.store, services.backend.catalog.get(video_id).compiled_chunks
    names = sorted(name for name in store.work_files(video_id, "rendition", chunks) if name.startswith("piece-"))
    assert len(names) > TRANSFERS_AT_ONCE + 1
    local = [download(store.work_key(video_id, "rendition", chunks, name), tmp_path / name) for name in names]
    audio = download(store.work_key(video_id, "rendition", chunks, AUDIO), tmp_path / AUDIO)
    expected = tmp_path / "joined-here.mp4"
    rendition.assemble(Ffmpeg(os.environ["FFMPEG_BINARY"]), local, audio, str(expected))
    held = []  # the pieces' bytes in the assembly's work directory each time one arrives

    def size_of(entry) -> int:
        try:
            return entry.stat().st_size
        except FileNotFoundError:  # copied and removed meanwhile
            return 0
    fetch = WorkFiles.get

    def observed(self, *arguments):
        path = fetch(self, *arguments)
        folder = os.path.dirname(path)
        held.append(sum(size_of(entry) for entry in os.scandir(folder)
                        if entry.name.startswith("piece-") and entry.name.endswith(".mp4")))
        return path
    monkeypatch.setattr(WorkFiles, "get", observed)
    answer = app_module.join_videos(sqs_event(assembly.body, assembly.receipt),
                                    LambdaContext("join_videos", memory_size=1024))
    assert not answer["batchItemFailures"]
    assembly.acknowledge()
    made = download(services.backend.catalog.get(video_id).rendition.key, tmp_path / "streamed.mp4")
    assert open(made, "rb").read() == expected.read_bytes()
    assert 0 < max(held) < sum(os.path.getsize(path) for path in local)
