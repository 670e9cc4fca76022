"""The HTTP contract (app.py and chalicelib.responses) through Chalice's test client, over
the in-memory backend: status codes, bodies and error JSON, without AWS or ffmpeg. The
same routes over moto, with real joins, are in tests/integration/test_api.py."""
import json

import pytest

import app as app_module
from chalicelib import responses
from chalicelib.errors import StorageUnavailable
from tests.conftest import fixture_chunks


def body(response) -> dict:
    return json.loads(response.body)


def create(client) -> tuple[int, dict]:
    response = client.http.post("/create_video")
    assert response.status_code == 201
    created = body(response)
    return created["video_id"], {"Authorization": f"Bearer {created['upload_token']}"}


def append(client, video_id, chunk: bytes, auth: dict):
    return client.http.post(f"/append_video/{video_id}", body=chunk,
                            headers={**auth, "Content-Type": "video/webm"})


def test_create_answers_201_with_the_id_the_token_and_the_status(client):
    response = client.http.post("/create_video")
    assert response.status_code == 201
    created = body(response)
    assert (created["video_id"], created["status"], created["chunk_count"]) == (1, "empty", 0)
    assert created["upload_token"] and created["created_at"].endswith("Z")


def test_the_first_append_is_added_and_later_ones_appended_and_joined(client):
    video_id, auth = create(client)
    chunks = fixture_chunks()
    first, second = append(client, video_id, chunks[0], auth), append(client, video_id, chunks[1], auth)
    assert (first.status_code, second.status_code) == (200, 200)
    assert body(first) == {"message": "Video added successfully", "video_id": video_id,
                           "chunk_index": 0, "bytes_received": len(chunks[0]),
                           "committed_bytes": len(chunks[0])}
    assert body(second)["message"] == "Video appended and joined successfully"
    assert second.headers["Upload-Offset"] == str(len(chunks[0]) + len(chunks[1]))


def test_get_answers_202_with_retry_after_while_the_video_is_joined(client):
    video_id, auth = create(client)
    append(client, video_id, fixture_chunks()[0], auth)
    waiting = client.http.get(f"/get_video/{video_id}", headers=auth)
    assert waiting.status_code == 202
    assert waiting.headers["Retry-After"] == "2"
    assert body(waiting) == {"status": "processing", "retry_after": 2}


@pytest.mark.parametrize("request_, status, code", [
    (lambda c, auth: c.http.get("/get_video/abc", headers=auth), 400, "InvalidVideoId"),
    (lambda c, auth: c.http.get("/get_video/1", headers=auth), 400, "NoChunks"),
    (lambda c, auth: c.http.get("/videos/1"), 401, "MissingToken"),
    (lambda c, auth: c.http.get("/videos/1", headers={"Authorization": "Bearer x"}), 403, "WrongToken"),
    (lambda c, auth: c.http.get("/videos/999", headers=auth), 404, "VideoNotFound"),
    (lambda c, auth: append(c, 1, b"", auth), 400, "InvalidUpload"),
    (lambda c, auth: append(c, 1, b"\0" * 4_500_001, auth), 413, "ChunkTooLarge"),
])
def test_errors_are_json_with_their_status_and_code(client, request_, status, code):
    _, auth = create(client)
    response = request_(client, auth)
    assert response.status_code == status, response.body
    assert body(response)["Code"] == code and body(response)["Message"]


def test_a_storage_outage_is_a_503_the_client_may_retry(client, services, monkeypatch):
    video_id, auth = create(client)

    def unreachable(*args):
        raise StorageUnavailable("S3 did not answer (EndpointConnectionError); retry")

    monkeypatch.setattr(services.backend.store, "put_chunk", unreachable)
    response = append(client, video_id, b"chunk", auth)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert body(response) == {"Code": "StorageUnavailable",
                              "Message": "S3 did not answer (EndpointConnectionError); retry"}


def test_a_failed_video_is_422_with_the_reason(client, services):
    video_id, auth = create(client)
    append(client, video_id, b"notes, not a recording", auth)
    services.joiner.run(video_id)
    response = client.http.get(f"/get_video/{video_id}", headers=auth)
    assert response.status_code == 422
    assert body(response)["Message"] == ("the chunks do not make a playable video: the first "
                                         "chunk does not start with a WebM, Matroska or MP4 header")
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert (status["status"], status["chunk_count"]) == ("failed", 1)
    assert status["error"].startswith("the first chunk does not start")


def test_the_error_body_carries_the_details(client):
    from chalicelib.errors import ChunkTooLarge
    error = ChunkTooLarge("too big", limit_bytes=10)
    assert responses.error_body(error) == {"Code": "ChunkTooLarge", "Message": "too big",
                                           "limit_bytes": 10}


def test_a_conflicting_range_is_409_with_the_offset_to_resume_from(client):
    video_id, auth = create(client)
    chunk = fixture_chunks()[0]
    ok = client.http.post(f"/append_video/{video_id}", body=chunk, headers={
        **auth, "Content-Type": "video/webm", "Content-Range": f"bytes 0-{len(chunk) - 1}/*"})
    assert ok.status_code == 200 and ok.headers["Upload-Offset"] == str(len(chunk))
    gap = client.http.post(f"/append_video/{video_id}", body=b"x" * 10, headers={
        **auth, "Content-Type": "video/webm", "Content-Range": f"bytes {len(chunk) + 5}-{len(chunk) + 14}/*"})
    assert gap.status_code == 409
    assert gap.headers["Upload-Offset"] == str(len(chunk))
    assert body(gap)["Code"] == "RangeConflict" and body(gap)["committed_bytes"] == len(chunk)


def test_a_malformed_range_is_416_and_a_wrong_digest_400_and_nothing_is_stored(client, services):
    video_id, auth = create(client)
    bad_range = client.http.post(f"/append_video/{video_id}", body=b"x", headers={
        **auth, "Content-Type": "video/webm", "Content-Range": "bytes=0-0"})
    assert (bad_range.status_code, body(bad_range)["Code"]) == (416, "InvalidRange")
    bad_digest = client.http.post(f"/append_video/{video_id}", body=b"x", headers={
        **auth, "Content-Type": "video/webm", "Content-Digest": "sha-256=:AAAA:"})
    assert (bad_digest.status_code, body(bad_digest)["Code"]) == (400, "DigestMismatch")
    assert services.backend.store.objects == {}
    assert services.backend.catalog.get(video_id).chunk_count == 0


def test_finalize_answers_the_status_and_later_appends_are_409(client):
    video_id, auth = create(client)
    append(client, video_id, fixture_chunks()[0], auth)
    finalized = client.http.post(f"/videos/{video_id}/finalize", headers=auth)
    assert finalized.status_code == 200
    status = body(finalized)
    assert (status["finalized"], status["status"], status["next_chunk_index"]) == (True, "processing", 1)
    assert status["committed_bytes"] == len(fixture_chunks()[0])
    late = append(client, video_id, fixture_chunks()[1], auth)
    assert (late.status_code, body(late)["Code"]) == (409, "VideoFinalized")
    assert client.http.post("/videos/999/finalize", headers=auth).status_code == 404


def test_a_long_bad_id_is_not_echoed_back_whole(client):
    _, auth = create(client)
    response = client.http.get("/videos/" + "x" * 10_000, headers=auth)
    assert response.status_code == 400
    assert len(body(response)["Message"]) < 120


def test_delete_answers_204_and_then_the_video_is_gone(client):
    video_id, auth = create(client)
    append(client, video_id, fixture_chunks()[0], auth)
    deleted = client.http.delete(f"/videos/{video_id}", headers=auth)
    assert (deleted.status_code, deleted.body) == (204, b"")
    assert client.http.get(f"/videos/{video_id}", headers=auth).status_code == 404
    assert client.http.delete(f"/videos/{video_id}", headers=auth).status_code == 404


def test_the_expiry_schedule_runs_the_sweep(services, settings_env, monkeypatch):
    from devtools.worker import expire_abandoned
    created = services.videos.create()
    services.videos.append(created.view.video.video_id, created.upload_token, b"left")
    monkeypatch.setattr(services.videos, "clock", lambda: 10**12)  # far in the future
    expire_abandoned(app_module)
    assert services.backend.catalog.get(created.view.video.video_id) is None
