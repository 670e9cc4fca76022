"""The MP4 rendition's state machine (chalicelib.renditions) and its answers over HTTP
(GET /get_video/<id>/?format=mp4, the status's `renditions`), over the in-memory backend.
The rendition itself is never encoded here (no process in the unit tier): the steps run
here are those that decide without ffmpeg (what to queue, what to leave alone);
tests/integration/test_renditions.py runs every step for real."""
import dataclasses
import json

import pytest

from chalicelib import renditions
from chalicelib.media.probe import MediaInfo, Stream
from chalicelib.media.rendition import Piece
from chalicelib.models import JoinMethod, MediaSummary, Rendition, RenditionState
from chalicelib.ports import (REENCODE_AUDIO, REENCODE_PART, RENDITION, RENDITION_ASSEMBLE,
                              RENDITION_AUDIO, RENDITION_PIECE, JoinRequest)
from chalicelib.renditions import RenditionOutcome
from tests.conftest import fixture_chunks

VP8 = MediaSummary(container="webm", content_type="video/webm", duration=3.0, byte_size=99,
                   join_method=JoinMethod.REMUX, audio_only=False, video_codec="vp8",
                   width=640, height=360, audio_codec="opus")
H264 = MediaSummary(container="mp4", content_type="video/mp4", duration=3.0, byte_size=99,
                    join_method=JoinMethod.REMUX, audio_only=False, video_codec="h264",
                    width=640, height=360, audio_codec="aac")
OPUS_ONLY = MediaSummary(container="webm", content_type="audio/webm", duration=3.0, byte_size=99,
                         join_method=JoinMethod.REMUX, audio_only=True, audio_codec="opus")


def body(response) -> dict:
    return json.loads(response.body)


def ready_video(services, media: MediaSummary = VP8) -> tuple[int, dict, str]:
    """A video joined (as the join job records it), its reader headers and playback token."""
    created = services.videos.create()
    video_id, token = created.view.video.video_id, created.upload_token
    services.videos.append(video_id, token, fixture_chunks()[0])
    store, catalog = services.backend.store, services.backend.catalog
    key = store.compiled_key(video_id, 1, media.container)
    store.objects[key] = b"original"
    catalog.finish_join(video_id, 1, key, None, media)
    while services.backend.queue.receive() is not None:  # the append's join request
        pass
    return video_id, {"Authorization": f"Bearer {token}"}, created.playback_token


def queued_kinds(services) -> list[str]:
    kinds = []
    while (delivery := services.backend.queue.receive()) is not None:
        kinds.append(delivery.request.kind)
    return kinds


def pending(services, video_id: int, chunks: int = 1) -> None:
    services.backend.catalog.request_rendition(video_id, chunks, 10.0, stall_seconds=60)


def store_work(services, video_id: int, names: dict[str, bytes], chunks: int = 1) -> None:
    store = services.backend.store
    for name, data in names.items():
        store.objects[store.work_key(video_id, "rendition", chunks, name)] = data


def two_piece_plan(audio: bool = True) -> bytes:
    pieces = [Piece(0, 0.0, 1.5, 0, 45, 640, 360), Piece(1, 1.5, 3.0, 45, 45, 640, 360)]
    return renditions.Plan(pieces, audio).to_json()


def step(kind: str, video_id: int, chunks: int = 1, piece: int | None = None) -> JoinRequest:
    return JoinRequest(video_id, False, kind, chunks, piece)


# --- which videos get one -------------------------------------------------------------

def test_only_videos_that_are_not_h264_aac_in_mp4_want_a_rendition():
    assert renditions.wanted(VP8)
    assert not renditions.wanted(H264)
    assert not renditions.wanted(OPUS_ONLY)
    matroska_h264 = MediaSummary(**{**H264.__dict__, "container": "matroska"})
    assert renditions.wanted(matroska_h264)  # H.264 in Matroska: not what iOS plays
    ten_bit = MediaInfo(3.0, (Stream("video", "h264", "High 10"), Stream("audio", "aac")))
    assert renditions.wanted(H264, ten_bit)


def test_only_h264_a_phone_decodes_within_1080p_is_copied_into_the_rendition():
    from chalicelib.media.rendition import copies_video

    def video(codec, profile, width, height):
        return MediaInfo(3.0, (Stream("video", codec, profile, width, height), Stream("audio", "opus")))
    assert copies_video(video("h264", "High", 1280, 720))
    assert copies_video(video("h264", "Constrained Baseline", 1080, 1920))  # upright
    assert not copies_video(video("h264", "High 10", 1280, 720))  # 10-bit
    assert not copies_video(video("h264", "High", 3840, 2160))  # beyond level 4.1
    assert not copies_video(video("h264", "High", 1281, 720))  # odd: not 4:2:0 whole
    assert not copies_video(video("vp8", None, 1280, 720))


# --- the job's steps (the encoding itself: tests/integration/test_renditions.py) --------

def test_a_video_longer_than_the_bound_is_too_long_and_nothing_is_encoded(services):
    services.renditions.settings = dataclasses.replace(services.settings, rendition_max_seconds=2)
    video_id, _, _ = ready_video(services)
    pending(services, video_id)
    assert services.renditions.run(JoinRequest(video_id, False, RENDITION)) is RenditionOutcome.TOO_LONG
    rendition = services.backend.catalog.get(video_id).current_rendition()
    assert rendition.state is RenditionState.TOO_LONG
    assert "more than the 2 s" in rendition.error
    assert queued_kinds(services) == []
    assert services.backend.store.work_files(video_id, "rendition", 1) == set()


def test_asked_again_the_plan_queues_only_the_steps_whose_output_is_missing(services):
    video_id, _, _ = ready_video(services)
    pending(services, video_id)
    store_work(services, video_id, {"plan.json": two_piece_plan(), "piece-00000.mp4": b"done"})
    assert services.renditions.plan(video_id) is RenditionOutcome.PLANNED
    requests = list(iter(services.backend.queue.receive, None))
    assert sorted((d.request.kind, d.request.piece) for d in requests) == [
        (RENDITION_AUDIO, None), (RENDITION_PIECE, 1)]
    assert {d.request.chunks for d in requests} == {1}


def test_with_every_output_stored_the_plan_queues_the_assembly(services):
    video_id, _, _ = ready_video(services)
    pending(services, video_id)
    store_work(services, video_id, {"plan.json": two_piece_plan(audio=False),
                                    "piece-00000.mp4": b"done", "piece-00001.mp4": b"done"})
    assert services.renditions.plan(video_id) is RenditionOutcome.PLANNED
    assert queued_kinds(services) == [RENDITION_ASSEMBLE]


def test_an_assembly_missing_an_output_queues_its_step_again(services):
    video_id, _, _ = ready_video(services)
    pending(services, video_id)
    store_work(services, video_id, {"plan.json": two_piece_plan(), "piece-00001.mp4": b"done",
                                    "audio.m4a": b"done"})
    outcome = services.renditions.run(step(RENDITION_ASSEMBLE, video_id))
    assert outcome is RenditionOutcome.STEPS_MISSING
    [again] = list(iter(services.backend.queue.receive, None))
    assert (again.request.kind, again.request.piece) == (RENDITION_PIECE, 0)
    assert services.backend.catalog.get(video_id).current_rendition().state is RenditionState.PENDING


@pytest.mark.parametrize("kind, piece", [(RENDITION_PIECE, 0), (RENDITION_AUDIO, None),
                                         (RENDITION_ASSEMBLE, None)])
def test_a_step_of_a_rendition_no_longer_pending_does_nothing_and_removes_its_files(services, kind, piece):
    video_id, _, _ = ready_video(services)
    catalog = services.backend.catalog
    pending(services, video_id)
    store_work(services, video_id, {"plan.json": two_piece_plan(), "source-00000.mkv": b"x"})
    catalog.finish_rendition(video_id, Rendition(1, RenditionState.FAILED, error="piece 1 broke"))
    assert services.renditions.run(step(kind, video_id, piece=piece)) is RenditionOutcome.UP_TO_DATE
    assert services.backend.store.work_files(video_id, "rendition", 1) == set()
    # a step of an older compiled count, once a newer join has finished
    store_work(services, video_id, {"plan.json": two_piece_plan()})
    catalog.finish_join(video_id, 2, services.backend.store.compiled_key(video_id, 2, "webm"), None, VP8)
    assert services.renditions.run(step(kind, video_id, piece=piece)) is RenditionOutcome.SUPERSEDED
    assert services.backend.store.work_files(video_id, "rendition", 1) == set()
    assert queued_kinds(services) == []


def test_a_piece_the_plan_does_not_have_fails_the_rendition_with_the_reason(services):
    video_id, _, _ = ready_video(services)
    pending(services, video_id)
    store_work(services, video_id, {"plan.json": two_piece_plan()})
    assert services.renditions.run(step(RENDITION_PIECE, video_id, piece=7)) is RenditionOutcome.FAILED
    rendition = services.backend.catalog.get(video_id).current_rendition()
    assert rendition.error == "piece 7: not in the plan (2 pieces)"
    assert services.backend.store.work_files(video_id, "rendition", 1) == set()


def test_the_job_leaves_alone_what_plays_everywhere_and_what_is_gone(services):
    video_id, _, _ = ready_video(services, H264)
    assert services.renditions.plan(video_id) is RenditionOutcome.NOT_WANTED
    assert services.renditions.plan(999) is RenditionOutcome.NO_SUCH_VIDEO


# --- GET /get_video/<id>/?format=mp4 ----------------------------------------------------

def test_while_pending_the_mp4_is_a_202_and_asked_for_once(client, services):
    video_id, auth, _ = ready_video(services)
    for _ in range(3):
        waiting = client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth)
        assert waiting.status_code == 202
        assert waiting.headers["Retry-After"] == "2"
        assert body(waiting)["status"] == "processing"
    assert queued_kinds(services) == [RENDITION]
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["renditions"] == [{"format": "mp4", "state": "pending", "byte_size": None,
                                     "video_codec": None, "audio_codec": None}]
    # the original is served as before
    original = client.http.get(f"/get_video/{video_id}/", headers=auth)
    assert original.status_code == 302 and "compiled/000001.webm" in original.headers["Location"]


def test_once_ready_the_mp4_is_a_302_to_the_rendition(client, services):
    video_id, auth, playback = ready_video(services)
    key = services.backend.store.rendition_key(video_id, 1)
    services.backend.store.objects[key] = b"rendered"
    services.backend.catalog.finish_rendition(video_id, Rendition(
        1, RenditionState.READY, key=key, byte_size=8, video_codec="h264", audio_codec="aac"))
    ready = client.http.get(f"/get_video/{video_id}/?format=mp4&token={playback}")
    assert ready.status_code == 302
    assert "compiled/000001.h264.mp4" in ready.headers["Location"]
    assert body(ready)["content_type"] == "video/mp4"
    saved = client.http.get(f"/get_video/{video_id}/?format=mp4&download=1", headers=auth)
    assert "attachment=video-%d.mp4" % video_id in saved.headers["Location"]
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["renditions"] == [{"format": "mp4", "state": "ready", "byte_size": 8,
                                     "video_codec": "h264", "audio_codec": "aac"}]
    assert queued_kinds(services) == []


@pytest.mark.parametrize("state, error", [(RenditionState.FAILED, "it broke"),
                                          (RenditionState.TOO_LONG, "it is too long")])
def test_a_failed_or_too_long_rendition_is_a_422_that_says_why(client, services, state, error):
    video_id, auth, _ = ready_video(services)
    services.backend.catalog.finish_rendition(video_id, Rendition(1, state, error=error))
    refused = client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth)
    assert refused.status_code == 422
    assert body(refused)["Code"] == "RenditionUnavailable"
    assert body(refused)["state"] == state.value and error in body(refused)["Message"]
    assert client.http.get(f"/get_video/{video_id}/", headers=auth).status_code == 302
    assert body(client.http.get(f"/videos/{video_id}", headers=auth))["renditions"][0]["error"] == error


def test_an_h264_aac_mp4_original_is_served_as_the_mp4(client, services):
    video_id, auth, _ = ready_video(services, H264)
    served = client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth)
    assert served.status_code == 302 and "compiled/000001.mp4" in served.headers["Location"]
    assert queued_kinds(services) == []
    assert body(client.http.get(f"/videos/{video_id}", headers=auth))["renditions"] == []


def test_an_audio_only_recording_has_no_mp4(client, services):
    video_id, auth, _ = ready_video(services, OPUS_ONLY)
    refused = client.http.get(f"/get_video/{video_id}/?format=mp4", headers=auth)
    assert (refused.status_code, body(refused)["Code"]) == (422, "RenditionUnavailable")


@pytest.mark.parametrize("value", ["webm", "MP4", "", "original"])
def test_an_unknown_format_is_a_400(client, services, value):
    video_id, auth, _ = ready_video(services)
    refused = client.http.get(f"/get_video/{video_id}/?format={value}", headers=auth)
    assert (refused.status_code, body(refused)["Code"]) == (400, "UnsupportedFormat")


def test_the_join_job_asks_for_the_rendition_of_what_it_published(memory, monkeypatch):
    """The join of VP8/Opus chunks is not run here (ffmpeg); what it does after finish_join
    is: a pending rendition and a message of kind rendition, before anything else (a client
    polling the status sees the video ready with its rendition listed)."""
    from chalicelib.joiner import Joiner
    from chalicelib.media.containers import WEBM
    from chalicelib.media.joins import PreparedJoin

    class Prepared(PreparedJoin):
        def upload(self): pass
        def verify(self): pass
        def abort(self): pass

    created = memory.videos.create()
    video_id = created.view.video.video_id
    memory.videos.append(video_id, created.upload_token, fixture_chunks()[0])
    while memory.backend.queue.receive() is not None:
        pass
    info = MediaInfo(3.0, (Stream("video", "vp8", None, 640, 360), Stream("audio", "opus")))
    prepared = Prepared("videos/%d/compiled/000001.webm" % video_id, WEBM, info, JoinMethod.REMUX,
                        99, "/nonexistent")
    joiner: Joiner = memory.joiner
    joiner._poster = lambda *args: None
    video = memory.backend.catalog.get(video_id)
    from chalicelib import joiner as joiner_module, transfers
    at_ready = []
    monkeypatch.setattr(joiner_module.telemetry, "video_ready", lambda *args: at_ready.append(
        memory.backend.catalog.get(video_id).current_rendition()))
    with transfers.scope() as moved:
        joiner._publish(video, prepared, "/tmp", {}, 0.0, moved)
    assert memory.backend.catalog.get(video_id).current_rendition().state is RenditionState.PENDING
    assert [r.state for r in at_ready] == [RenditionState.PENDING]
    assert [d.request.kind for d in iter(memory.backend.queue.receive, None)] == [RENDITION]


def test_join_messages_keep_their_shape_and_a_rendition_is_a_kind_of_its_own():
    from chalicelib.adapters.sqs import join_request_of, message_body
    from chalicelib.ports import JOIN, JoinRequest
    assert join_request_of('{"join": 5, "urgent": true}') == JoinRequest(5, True, JOIN)
    rendition = JoinRequest(5, False, RENDITION)
    assert join_request_of(message_body(rendition)) == rendition
    assert json.loads(message_body(JoinRequest(5, True))) == {"join": 5, "urgent": True}
    for each in (JoinRequest(5, False, RENDITION_PIECE, 3, 0), JoinRequest(5, False, RENDITION_AUDIO, 3),
                 JoinRequest(5, False, RENDITION_ASSEMBLE, 3),
                 JoinRequest(5, False, REENCODE_PART, 3, 1, 1_000_000.123456),
                 JoinRequest(5, False, REENCODE_AUDIO, 3, None, 1_000_000.123456)):
        assert join_request_of(message_body(each)) == each
    for unreadable in ('{"kind": "thumbnail", "video_id": 5}', '[5]', '{"kind": "rendition"}',
                       '{"kind": "rendition_piece", "video_id": 5, "chunks": 3}',
                       '{"kind": "rendition_audio", "video_id": 5}',
                       '{"kind": "reencode_part", "video_id": 5, "chunks": 3, "piece": 0}'):
        with pytest.raises((ValueError, KeyError, TypeError)):
            join_request_of(unreadable)


def test_the_share_page_offers_the_mp4_first_only_when_there_is_one_to_make(client, services):
    video_id, _, playback = ready_video(services)
    page = client.http.get(f"/watch/{video_id}?token={playback}").body.decode()
    assert page.index('type="video/mp4"') < page.index('type="video/webm"')
    assert "format=mp4" in page
    video_id, _, playback = ready_video(services, H264)
    page = client.http.get(f"/watch/{video_id}?token={playback}").body.decode()
    assert "format=mp4" not in page and page.count("<source ") == 1
    # one that will never be made (failed, too long) is not offered
    video_id, _, playback = ready_video(services)
    services.backend.catalog.finish_rendition(video_id, Rendition(1, RenditionState.TOO_LONG, error="long"))
    page = client.http.get(f"/watch/{video_id}?token={playback}").body.decode()
    assert "format=mp4" not in page and page.count("<source ") == 1
