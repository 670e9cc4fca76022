"""The join job against moto's S3, DynamoDB and SQS, with the real ffmpeg."""
import pytest

from chalicelib import aws
from chalicelib.media import verify
from chalicelib.settings import get_settings
from tests.conftest import fixture_chunks
from tests.helpers import object_bytes, queued_joins, record, status_of
from tests.media_factory import cut, unseekable_stream


def test_a_ready_video_reports_its_metadata_and_a_poster(on_moto):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    video_id, token = record(services, fixture_chunks())
    assert joiner.run(video_id) == "joined"
    status = status_of(service, video_id, token)
    assert status["status"] == "ready"
    assert status["duration"] == pytest.approx(3.0, abs=0.05)
    assert (status["width"], status["height"]) == (640, 360)
    assert (status["video_codec"], status["audio_codec"], status["container"]) == ("vp8", "opus", "webm")
    assert status["byte_size"] > 90_000
    assert status["audio_only"] is False
    poster_key = f"videos/{video_id}/compiled/000006.jpg"
    assert poster_key in status["poster_url"]
    assert object_bytes(poster_key)[:3] == b"\xff\xd8\xff"  # a JPEG


def test_an_audio_only_recording_has_no_poster_and_says_so(on_moto):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    video_id, token = record(services, cut(unseekable_stream("webm", None, "opus", seconds=2.0), pieces=5))
    assert joiner.run(video_id) == "joined"
    status = status_of(service, video_id, token)
    assert (status["status"], status["audio_only"], status["poster_url"]) == ("ready", True, None)
    assert status["content_type"] == "audio/webm"
    assert "width" not in status


def test_running_the_job_again_for_the_same_chunks_gives_the_same_object(on_moto):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    video_id, token = record(services, fixture_chunks())
    joiner.run(video_id)
    key = f"videos/{video_id}/compiled/000006.webm"
    first = object_bytes(key)
    assert joiner.run(video_id) == "up to date"
    # As if the first run had died after its upload, before it recorded the result.
    aws.videos_table().update_item(Key={"video_id": video_id},
                                   UpdateExpression="REMOVE compiled_chunks, compiled_key")
    assert joiner.run(video_id) == "joined"
    assert object_bytes(key) == first
    assert status_of(service, video_id, token)["status"] == "ready"


def test_a_newer_join_replaces_and_deletes_the_older_object(on_moto):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    chunks = fixture_chunks()
    video_id, token = record(services, chunks[:3])
    joiner.run(video_id)
    service.append(video_id, token, chunks[3])
    joiner.run(video_id)
    listing = aws.s3().list_objects_v2(Bucket=get_settings().bucket_name,
                                       Prefix=f"videos/{video_id}/compiled/")
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listing["Contents"]) == ["000004.jpg", "000004.webm"]


def test_a_failed_join_keeps_the_chunks_and_records_the_reason(on_moto):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    video_id, token = record(services, [b"not a video at all" * 100, b"more"])
    assert joiner.run(video_id) == "failed"
    status = status_of(service, video_id, token)
    assert status["status"] == "failed"
    assert "header" in status["error"]
    assert object_bytes(f"videos/{video_id}/chunks/000001.chunk") == b"more"


def test_a_chunk_still_in_flight_defers_the_join(on_moto):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    video_id, token = record(services, fixture_chunks()[:2])
    catalog.claim_chunk(video_id, 10, "in flight", None, now=10**10)  # claimed, its bytes not yet stored
    assert joiner.run(video_id) == "waiting for a chunk"
    assert status_of(service, video_id, token)["status"] == "processing"


def test_a_join_waits_while_the_recording_goes_on(clocked_on_moto):
    services = clocked_on_moto
    service, joiner, clock = services.videos, services.joiner, services.videos.clock
    video_id, token = record(services, fixture_chunks()[:3])
    assert queued_joins(joiner.queue, delayed=True) == 1  # the first append's join, JOIN_DELAY_SECONDS ahead
    clock.now += 2  # the last chunk came 2 s ago: still recording
    assert joiner.run(video_id, urgent=False) == "waiting for the recording to pause"
    assert queued_joins(joiner.queue, delayed=True) == 2  # it put itself back on the queue
    assert status_of(service, video_id, token)["status"] == "processing"
    clock.now += 3  # quiet for the whole JOIN_DELAY_SECONDS
    assert joiner.run(video_id, urgent=False) == "joined"
    assert status_of(service, video_id, token)["status"] == "ready"


def test_someone_waiting_to_play_does_not_wait_for_the_pause(clocked_on_moto):
    services = clocked_on_moto
    service, joiner, clock = services.videos, services.joiner, services.videos.clock
    video_id, token = record(services, fixture_chunks())
    assert service.playback(video_id, token).url is None
    assert queued_joins(joiner.queue) == 1  # the urgent one: not delayed
    assert joiner.run(video_id, urgent=True) == "joined"
    assert service.playback(video_id, token).url is not None


def test_a_video_that_fails_the_decode_check_is_not_published(on_moto, monkeypatch):
    from chalicelib.errors import NotPlayable
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    video_id, token = record(services, fixture_chunks())

    def broken(ffmpeg, path, duration):
        raise NotPlayable("the joined video does not decode cleanly: test")

    monkeypatch.setattr(verify, "check_decodes", broken)
    assert joiner.run(video_id) == "failed"
    status = status_of(service, video_id, token)
    assert (status["status"], status["error"]) == ("failed", "the joined video does not decode cleanly: test")
    listing = aws.s3().list_objects_v2(Bucket=get_settings().bucket_name,
                                       Prefix=f"videos/{video_id}/compiled/")
    assert [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(".webm")] == []


def test_an_urgent_join_that_never_started_is_asked_for_again(clocked_on_moto):
    from chalicelib.videos import URGENT_JOIN_LOST_SECONDS
    services = clocked_on_moto
    service, joiner, clock = services.videos, services.joiner, services.videos.clock
    video_id, token = record(services, fixture_chunks())
    service.playback(video_id, token)
    assert queued_joins(joiner.queue) == 1
    clock.now += URGENT_JOIN_LOST_SECONDS - 1
    service.playback(video_id, token)
    assert queued_joins(joiner.queue) == 1  # still expected to start
    clock.now += 2
    service.playback(video_id, token)
    assert queued_joins(joiner.queue) == 2  # presumed lost: asked again


def test_no_second_join_of_the_same_chunks_while_one_runs(clocked_on_moto):
    services = clocked_on_moto
    service, joiner, clock = services.videos, services.joiner, services.videos.clock
    video_id, token = record(services, fixture_chunks())
    joiner.catalog.start_join(video_id, clock.now)  # a join of all 6 chunks is running elsewhere
    assert service.playback(video_id, token).url is None
    assert queued_joins(joiner.queue) == 0
    assert joiner.run(video_id, urgent=True) == "already being joined"
    service.append(video_id, token, b"more")  # a new chunk: the running join is out of date
    assert joiner.catalog.get(video_id).joining_now(clock.now, 960) is False


def test_a_chunk_cut_short_then_sent_whole_fails_the_join_naming_the_hole(on_moto):
    """The bytes of a chunk whose body was cut short, then the whole chunk again: ffmpeg
    reads past the damage and drops a second of frames without an error; the walk of the
    stream's structure finds where the bytes stop making sense."""
    services = on_moto
    chunks = fixture_chunks()
    video_id, token = record(services, chunks[:2] + [chunks[2][:len(chunks[2]) // 2]] + chunks[2:])
    assert services.joiner.run(video_id) == "failed"
    status = status_of(services.videos, video_id, token)
    assert status["status"] == "failed"
    assert status["error"] == ("the recording is damaged: element C2 among the clusters at "
                               "byte 36829: bytes out of order or missing")


def test_whole_clusters_missing_fail_the_join_though_every_element_parses(on_moto):
    from tests.unit.test_matroska import chromium_stream, without_clusters
    services = on_moto
    data = without_clusters(chromium_stream(), 1, 2)
    video_id, token = record(services, [data[:5000], data[5000:]])
    assert services.joiner.run(video_id) == "failed"
    assert "the audio stops for" in status_of(services.videos, video_id, token)["error"]
