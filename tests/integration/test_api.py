"""The HTTP contract, in process: Chalice's test client against moto's S3, DynamoDB, SQS,
with the real join job and the real ffmpeg."""
import json

import pytest

import app as app_module
from tests.conftest import fixture_chunks
from tests.helpers import body, queued_joins, run_queued_joins


def join_queue():
    return app_module.services().backend.queue


def create(client) -> tuple[int, dict]:
    response = client.http.post("/create_video")
    assert response.status_code == 201
    created = body(response)
    return created["video_id"], {"Authorization": f"Bearer {created['upload_token']}"}


def append(client, video_id, chunk: bytes, auth: dict, content_type="video/webm"):
    return client.http.post(f"/append_video/{video_id}", body=chunk,
                            headers={**auth, "Content-Type": content_type})


def test_ids_count_up_from_one_and_tokens_are_random(client):
    first = body(client.http.post("/create_video"))
    second = body(client.http.post("/create_video"))
    assert (first["video_id"], second["video_id"]) == (1, 2)
    assert first["upload_token"] != second["upload_token"]
    assert len(first["upload_token"]) >= 22  # at least 128 bits, base64url
    assert first["status"] == "empty"


def test_only_the_token_hash_is_stored(client):
    created = body(client.http.post("/create_video"))
    from chalicelib import aws
    item = aws.videos_table().get_item(Key={"video_id": created["video_id"]})["Item"]
    assert created["upload_token"] not in json.dumps(item, default=str)
    assert len(item["token_hash"]) == 64


def test_append_messages_follow_the_contract(client):
    video_id, auth = create(client)
    chunks = fixture_chunks()
    first = append(client, video_id, chunks[0], auth)
    assert first.status_code == 200
    assert body(first)["message"] == "Video added successfully"
    assert body(first)["chunk_index"] == 0
    second = append(client, video_id, chunks[1], auth)
    assert body(second)["message"] == "Video appended and joined successfully"
    assert body(second)["chunk_index"] == 1
    assert body(second)["bytes_received"] == len(chunks[1])


def test_each_chunk_is_its_own_object_under_the_video_prefix(client):
    video_id, auth = create(client)
    for chunk in fixture_chunks()[:3]:
        append(client, video_id, chunk, auth)
    from chalicelib import aws
    listing = aws.s3().list_objects_v2(Bucket=app_module.get_settings().bucket_name,
                                       Prefix=f"videos/{video_id}/chunks/")
    keys = [o["Key"] for o in listing["Contents"]]
    assert keys == [f"videos/{video_id}/chunks/00000{i}.chunk" for i in range(3)]
    stored = aws.s3().get_object(Bucket=app_module.get_settings().bucket_name, Key=keys[1])
    assert stored["Body"].read() == fixture_chunks()[1]


def test_get_answers_202_until_joined_then_redirects_to_a_signed_url(client):
    video_id, auth = create(client)
    for chunk in fixture_chunks():
        append(client, video_id, chunk, auth)
    waiting = client.http.get(f"/get_video/{video_id}", headers=auth)
    assert waiting.status_code == 202
    assert waiting.headers["Retry-After"] == "2"
    assert body(waiting)["status"] == "processing"
    assert run_queued_joins(app_module) >= 1
    ready = client.http.get(f"/get_video/{video_id}", headers=auth)
    assert ready.status_code == 302
    location = ready.headers["Location"]
    assert f"/videos/{video_id}/compiled/000006.webm" in location
    assert "X-Amz-Signature=" in location
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["status"] == "ready"
    assert status["chunk_count"] == 6
    assert status["bytes"] == sum(map(len, fixture_chunks()))
    assert status["content_type"] == "video/webm"
    assert status["duration"] == pytest.approx(3.0, abs=0.1)
    assert (status["width"], status["height"]) == (640, 360)
    assert (status["video_codec"], status["audio_codec"]) == ("vp8", "opus")


def test_get_with_download_is_served_as_an_attachment_and_without_it_inline(client):
    import requests
    video_id, auth = create(client)
    for chunk in fixture_chunks():
        append(client, video_id, chunk, auth)
    run_queued_joins(app_module)
    saved = client.http.get(f"/get_video/{video_id}?download=1", headers=auth).headers["Location"]
    played = client.http.get(f"/get_video/{video_id}", headers=auth).headers["Location"]
    assert "response-content-disposition" not in played
    # Fetched as a browser would (moto answers requests to S3 in process): with the
    # disposition the URL signed.
    answer = requests.get(saved, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == f'attachment; filename="video-{video_id}.webm"'


def test_compiled_object_is_served_inline_as_webm(client):
    video_id, auth = create(client)
    for chunk in fixture_chunks():
        append(client, video_id, chunk, auth)
    run_queued_joins(app_module)
    from chalicelib import aws
    key = f"videos/{video_id}/compiled/000006.webm"
    head = aws.s3().head_object(Bucket=app_module.get_settings().bucket_name, Key=key)
    assert head["ContentType"] == "video/webm"
    assert head["ContentDisposition"] == "inline"


def test_an_append_after_a_join_makes_the_video_stale_again(client):
    video_id, auth = create(client)
    chunks = fixture_chunks()
    for chunk in chunks[:3]:
        append(client, video_id, chunk, auth)
    run_queued_joins(app_module)
    assert client.http.get(f"/get_video/{video_id}", headers=auth).status_code == 302
    append(client, video_id, chunks[3], auth)
    assert client.http.get(f"/get_video/{video_id}", headers=auth).status_code == 202
    run_queued_joins(app_module)
    ready = client.http.get(f"/get_video/{video_id}", headers=auth)
    assert "/compiled/000004.webm" in ready.headers["Location"]


def test_appends_schedule_at_most_one_pending_join_and_a_get_one_urgent_join(client):
    video_id, auth = create(client)
    for chunk in fixture_chunks():
        append(client, video_id, chunk, auth)
    assert queued_joins(join_queue()) == 1
    for _ in range(3):  # a player polling: one urgent join, not one per GET
        assert client.http.get(f"/get_video/{video_id}", headers=auth).status_code == 202
    assert queued_joins(join_queue()) == 2
    # the second finds the video up to date; then come the VP8 video's rendition's steps:
    # the plan, its one piece, the audio and the assembly
    assert run_queued_joins(app_module) == 6
    assert client.http.get(f"/get_video/{video_id}", headers=auth).status_code == 302


def test_a_status_poll_or_a_get_on_a_video_whose_join_was_lost_asks_again(client):
    video_id, auth = create(client)
    append(client, video_id, fixture_chunks()[0], auth)
    from chalicelib import aws
    # As if the scheduled message had been lost long ago.
    aws.videos_table().update_item(Key={"video_id": video_id},
                                   UpdateExpression="REMOVE join_requested_at")
    queue_url = aws.sqs().get_queue_url(QueueName=app_module.get_settings().job_queue_name)["QueueUrl"]
    aws.sqs().purge_queue(QueueUrl=queue_url)
    assert body(client.http.get(f"/videos/{video_id}", headers=auth))["status"] == "processing"
    assert queued_joins(join_queue()) == 1  # the status poll asked for one
    assert client.http.get(f"/get_video/{video_id}", headers=auth).status_code == 202
    assert queued_joins(join_queue()) == 2  # and the player, an urgent one
    # the second finds the video up to date; then come the VP8 video's rendition's steps:
    # the plan, its one piece, the audio and the assembly
    assert run_queued_joins(app_module) == 6
    assert client.http.get(f"/get_video/{video_id}", headers=auth).status_code == 302


def test_get_takes_the_playback_token_as_a_query_parameter_but_not_the_upload_token(client):
    response = client.http.post("/create_video")
    created = body(response)
    video_id, auth = created["video_id"], {"Authorization": f"Bearer {created['upload_token']}"}
    append(client, video_id, fixture_chunks()[0], auth)
    assert client.http.get(f"/get_video/{video_id}?token={created['playback_token']}").status_code == 202
    assert client.http.get(f"/get_video/{video_id}?token=wrong").status_code == 403
    refused = client.http.get(f"/get_video/{video_id}?token={created['upload_token']}")
    assert refused.status_code == 403
    assert created["upload_token"] not in refused.body.decode()
    rotated = body(client.http.post(f"/videos/{video_id}/playback_token", headers=auth))
    assert client.http.get(f"/get_video/{video_id}?token={rotated['playback_token']}").status_code == 202
    assert client.http.get(f"/get_video/{video_id}?token={created['playback_token']}").status_code == 403


@pytest.mark.parametrize("content_type", [
    "video/webm", "video/webm;codecs=vp8,opus", "application/octet-stream",
    "application/x-www-form-urlencoded", "video/mp4", "video/x-matroska", None])
def test_raw_bodies_are_stored_byte_for_byte_whatever_their_type(client, content_type):
    video_id, auth = create(client)
    chunk = fixture_chunks()[1]
    headers = dict(auth)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.http.post(f"/append_video/{video_id}", body=chunk, headers=headers)
    assert response.status_code == 200, response.body
    from chalicelib import aws
    stored = aws.s3().get_object(Bucket=app_module.get_settings().bucket_name,
                                 Key=f"videos/{video_id}/chunks/000000.chunk")["Body"].read()
    assert stored == chunk


def test_multipart_form_data_stores_the_file_not_the_envelope(client):
    import requests
    video_id, auth = create(client)
    chunk = fixture_chunks()[0]
    prepared = requests.Request("POST", "http://x", files={"video": ("blob", chunk, "video/webm")},
                                data={"index": "0"}).prepare()
    response = client.http.post(f"/append_video/{video_id}", body=prepared.body,
                                headers={**auth, "Content-Type": prepared.headers["Content-Type"]})
    assert response.status_code == 200, response.body
    from chalicelib import aws
    stored = aws.s3().get_object(Bucket=app_module.get_settings().bucket_name,
                                 Key=f"videos/{video_id}/chunks/000000.chunk")["Body"].read()
    assert stored == chunk


def test_a_chunk_over_the_limit_is_refused_with_413_naming_it(client, settings_env):
    settings_env(MAX_CHUNK_BYTES=10_000)
    video_id, auth = create(client)
    response = append(client, video_id, b"\0" * 10_001, auth)
    assert response.status_code == 413
    error = body(response)
    assert error["Code"] == "ChunkTooLarge"
    assert error["limit_bytes"] == 10_000
    assert "10000 bytes" in error["Message"]
    assert append(client, video_id, b"\0" * 10_000, auth).status_code == 200


def test_the_default_limit_is_what_fits_through_api_gateway(client):
    video_id, auth = create(client)
    response = append(client, video_id, b"\0" * 4_600_000, auth)
    assert response.status_code == 413
    assert body(response)["limit_bytes"] == 4_500_000


@pytest.mark.parametrize("path", ["/append_video/{id}", "/get_video/{id}", "/videos/{id}"])
def test_calls_without_a_token_get_401_and_with_a_wrong_one_403(client, path):
    video_id, auth = create(client)
    url = path.format(id=video_id)
    method = client.http.post if "append" in url else client.http.get
    missing = method(url, body=b"x", headers={"Content-Type": "video/webm"}) if "append" in url else method(url)
    assert missing.status_code == 401
    assert body(missing)["Code"] == "MissingToken"
    wrong = {"Authorization": "Bearer not-the-token", "Content-Type": "video/webm"}
    refused = method(url, body=b"x", headers=wrong) if "append" in url else method(url, headers=wrong)
    assert refused.status_code == 403
    assert body(refused)["Code"] == "WrongToken"


def test_a_wrong_token_stores_nothing(client):
    video_id, auth = create(client)
    append(client, video_id, b"x", {"Authorization": "Bearer nope"})
    from chalicelib import aws
    listing = aws.s3().list_objects_v2(Bucket=app_module.get_settings().bucket_name,
                                       Prefix=f"videos/{video_id}/")
    assert listing["KeyCount"] == 0
    assert body(client.http.get(f"/videos/{video_id}", headers=auth))["chunk_count"] == 0


def test_open_auth_mode_needs_no_token(client, settings_env):
    settings_env(AUTH_MODE="open")
    app_module.services.cache_clear()
    video_id = body(client.http.post("/create_video"))["video_id"]
    response = client.http.post(f"/append_video/{video_id}", body=fixture_chunks()[0],
                                headers={"Content-Type": "video/webm"})
    assert body(response)["message"] == "Video added successfully"
    assert client.http.get(f"/get_video/{video_id}").status_code == 202


@pytest.mark.parametrize("raw", ["abc", "-1", "1.5", "0", "99999999999999999999999", "1e3", "%20"])
def test_malformed_ids_are_400(client, raw):
    _, auth = create(client)
    for response in (client.http.get(f"/get_video/{raw}", headers=auth),
                     client.http.get(f"/videos/{raw}", headers=auth),
                     append(client, raw, b"x", auth)):
        assert response.status_code == 400, (raw, response.body)
        assert body(response)["Code"] == "InvalidVideoId"


def test_unknown_video_is_404(client):
    _, auth = create(client)
    for response in (client.http.get("/get_video/999", headers=auth),
                     client.http.get("/videos/999", headers=auth),
                     append(client, 999, b"x", auth)):
        assert response.status_code == 404
        assert body(response)["Code"] == "VideoNotFound"


def test_get_before_any_chunk_is_400(client):
    video_id, auth = create(client)
    response = client.http.get(f"/get_video/{video_id}", headers=auth)
    assert response.status_code == 400
    assert body(response)["Code"] == "NoChunks"


def test_an_empty_chunk_is_400_and_counts_nothing(client):
    video_id, auth = create(client)
    response = append(client, video_id, b"", auth)
    assert response.status_code == 400
    assert body(response)["Code"] == "InvalidUpload"
    assert body(client.http.get(f"/videos/{video_id}", headers=auth))["chunk_count"] == 0


def test_chunks_that_are_not_a_video_fail_with_422_and_stay_stored(client):
    video_id, auth = create(client)
    append(client, video_id, b"this is a text file, not a recording\n" * 50, auth,
           content_type="text/plain")
    run_queued_joins(app_module)
    response = client.http.get(f"/get_video/{video_id}", headers=auth)
    assert response.status_code == 422
    assert body(response)["Code"] == "NotPlayable"
    assert "header" in body(response)["Message"]
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["status"] == "failed"
    assert status["error"]
    from chalicelib import aws
    assert aws.s3().get_object(Bucket=app_module.get_settings().bucket_name,
                               Key=f"videos/{video_id}/chunks/000000.chunk")["Body"].read()


def test_a_storage_failure_is_503_and_leaves_the_record_as_it_was(client, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    class UnreachableS3:
        def put_object(self, **kwargs):
            raise EndpointConnectionError(endpoint_url="https://s3.internal.example")

    video_id, auth = create(client)
    chunks = fixture_chunks()
    append(client, video_id, chunks[0], auth)
    with monkeypatch.context() as patch:
        patch.setattr(app_module.services().backend.store, "client", UnreachableS3())
        failed = append(client, video_id, chunks[1], auth)
    assert failed.status_code == 503
    assert body(failed)["Code"] == "StorageUnavailable"
    # The client learns what failed, not where: no endpoint, no object key.
    assert "internal.example" not in failed.body.decode() and "chunks/" not in failed.body.decode()
    assert failed.headers["Retry-After"] == "2"
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert (status["next_chunk_index"], status["committed_bytes"]) == (1, len(chunks[0]))
    for index, chunk in enumerate(chunks[1:], start=1):  # the retry, then the rest
        assert body(append(client, video_id, chunk, auth))["chunk_index"] == index
    run_queued_joins(app_module)
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["status"] == "ready"
    assert status["chunk_count"] == 6
    assert status["bytes"] == sum(map(len, chunks))
    assert status["duration"] == pytest.approx(3.0, abs=0.1)


def test_a_delete_s3_answers_with_refused_keys_is_a_503_and_a_retry_finishes_it(client):
    from chalicelib import aws
    video_id, auth = create(client)
    append(client, video_id, fixture_chunks()[0], auth)

    def refuse_every_key(parsed, model, **_):  # what S3 answers when a key may not be deleted
        parsed["Errors"] = [{"Key": "k", "Code": "AccessDenied", "Message": "Access Denied"}]
    aws.s3().meta.events.register("after-call.s3.DeleteObjects", refuse_every_key)
    try:
        response = client.http.delete(f"/videos/{video_id}", headers=auth)
    finally:
        aws.s3().meta.events.unregister("after-call.s3.DeleteObjects", refuse_every_key)
    assert response.status_code == 503
    assert body(response)["Code"] == "StorageUnavailable"
    assert "AccessDenied" in body(response)["Message"]
    # The record stays, so the client's retry (its token is checked against it) can finish.
    assert client.http.get(f"/videos/{video_id}", headers=auth).status_code == 200
    assert client.http.delete(f"/videos/{video_id}", headers=auth).status_code == 204
    assert not aws.s3().list_objects_v2(Bucket=app_module.get_settings().bucket_name,
                                        Prefix=f"videos/{video_id}/").get("Contents")


def test_an_aws_outage_is_a_503_json_error_not_a_500(client, monkeypatch):
    from botocore.exceptions import EndpointConnectionError
    video_id, auth = create(client)

    class UnreachableTable:
        def get_item(self, **kwargs):
            raise EndpointConnectionError(endpoint_url="https://dynamodb.example")

    monkeypatch.setattr(app_module.services().backend.catalog, "_table_of_this_thread",
                        lambda: UnreachableTable())
    response = client.http.get(f"/videos/{video_id}", headers=auth)
    assert response.status_code == 503
    assert body(response)["Code"] == "StorageUnavailable"
    assert "retry" in body(response)["Message"]


def test_status_reports_times_and_counts(client):
    video_id, auth = create(client)
    status = body(client.http.get(f"/videos/{video_id}", headers=auth))
    assert status["status"] == "empty"
    assert status["chunk_count"] == 0 and status["bytes"] == 0
    assert status["created_at"].endswith("Z") and status["updated_at"].endswith("Z")


def test_root_answers_200(client):
    assert client.http.get("/").status_code == 200


def test_errors_carry_cors_headers_so_browsers_can_read_them(client):
    response = client.http.get("/get_video/abc")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
