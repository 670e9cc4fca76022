"""Malformed requests of every kind, each answered with a 4xx JSON error that names what is
wrong, and none of them changing what is stored."""
import base64
import dataclasses
import hashlib
import json

import pytest
import requests
from chalice.test import Client

import app as app_module
from chalicelib import wiring
from chalicelib.settings import get_settings
from tests.conftest import fixture_chunks

CHUNKS = fixture_chunks()[:2]
END = sum(map(len, CHUNKS))


@pytest.fixture(scope="module")
def recording():
    """A video holding two chunks, and a second video whose token is not the first's."""
    get_settings.cache_clear()
    services = wiring.build(get_settings(), wiring.memory_backend())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "services", lambda: services)
        with Client(app_module.app) as client:
            created = json.loads(client.http.post("/create_video").body)
            other = json.loads(client.http.post("/create_video").body)
            auth = {"Authorization": f"Bearer {created['upload_token']}"}
            for chunk in CHUNKS:
                assert client.http.post(f"/append_video/{created['video_id']}", body=chunk, headers={
                    **auth, "Content-Type": "video/webm"}).status_code == 200
            yield client, services, created["video_id"], auth, other["upload_token"]


def form(files: dict, data: dict | None = None) -> tuple[bytes, str]:
    prepared = requests.Request("POST", "http://x", files=files, data=data or {}).prepare()
    return prepared.body, prepared.headers["Content-Type"]


def sha256(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


WEBM = {"Content-Type": "video/webm"}
NEXT = b"\x1f\x43\xb6\x75" + b"\x00" * 96  # a chunk that would be fine at the end
GOOD_FORM, GOOD_FORM_TYPE = form({"chunk": ("blob", NEXT, "video/webm")})
TWO_FILES, TWO_FILES_TYPE = form({"a": ("a", b"1"), "b": ("b", b"2")})
NO_FILE, NO_FILE_TYPE = form({"a": (None, "1"), "b": (None, "2")})

# (name, method, path, headers without the token, body, token: "own"/"other"/None/raw,
#  status, Code)
CASES = [
    ("id: letters", "POST", "/append_video/abc", WEBM, NEXT, "own", 400, "InvalidVideoId"),
    ("id: negative", "POST", "/append_video/-1", WEBM, NEXT, "own", 400, "InvalidVideoId"),
    ("id: fraction", "GET", "/videos/1.5", {}, None, "own", 400, "InvalidVideoId"),
    ("id: zero", "GET", "/get_video/0", {}, None, "own", 400, "InvalidVideoId"),
    ("id: 16 digits", "GET", "/videos/1234567890123456", {}, None, "own", 400, "InvalidVideoId"),
    ("id: exponent", "POST", "/videos/1e3/finalize", {}, None, "own", 400, "InvalidVideoId"),
    ("id: 10 KB", "GET", "/videos/" + "9x" * 5000, {}, None, "own", 400, "InvalidVideoId"),
    ("id: unknown, append", "POST", "/append_video/999", WEBM, NEXT, "own", 404, "VideoNotFound"),
    ("id: unknown, status", "GET", "/videos/999", {}, None, "own", 404, "VideoNotFound"),
    ("id: unknown, finalize", "POST", "/videos/999/finalize", {}, None, "own", 404, "VideoNotFound"),
    ("token: none, append", "POST", "/append_video/{id}", WEBM, NEXT, None, 401, "MissingToken"),
    ("token: none, finalize", "POST", "/videos/{id}/finalize", {}, None, None, 401, "MissingToken"),
    ("token: another video's", "POST", "/append_video/{id}", WEBM, NEXT, "other", 403, "WrongToken"),
    ("token: another video's, finalize", "POST", "/videos/{id}/finalize", {}, None, "other", 403,
     "WrongToken"),
    ("token: Basic scheme", "GET", "/videos/{id}", {}, None, "Basic dXNlcjpwYXNz", 401, "MissingToken"),
    ("token: Bearer and nothing", "GET", "/videos/{id}", {}, None, "Bearer ", 401, "MissingToken"),
    ("token: wrong, in the query", "GET", "/get_video/{id}?token=nope", {}, None, None, 403, "WrongToken"),
    ("range: bytes=", "POST", "/append_video/{id}", {**WEBM, "Content-Range": "bytes=0-99/*"},
     NEXT, "own", 416, "InvalidRange"),
    ("range: last before first", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": f"bytes {END + 99}-{END}/*"}, NEXT, "own", 416, "InvalidRange"),
    ("range: past its total", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": f"bytes {END}-{END + 99}/{END + 50}"}, NEXT, "own", 416, "InvalidRange"),
    ("range: no unit", "POST", "/append_video/{id}", {**WEBM, "Content-Range": f"{END}-{END + 99}/*"},
     NEXT, "own", 416, "InvalidRange"),
    ("range: no total", "POST", "/append_video/{id}", {**WEBM, "Content-Range": f"bytes {END}-{END + 99}"},
     NEXT, "own", 416, "InvalidRange"),
    ("range: 20 digits", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": "bytes 0-99999999999999999999/*"}, NEXT, "own", 416, "InvalidRange"),
    ("range: a gap", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": f"bytes {END + 1}-{END + 100}/*"}, NEXT, "own", 409, "RangeConflict"),
    ("range: an overlap", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": f"bytes {END - 1}-{END + 98}/*"}, NEXT, "own", 409, "RangeConflict"),
    ("range: from the start again", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": "bytes 0-99/*"}, NEXT, "own", 409, "RangeConflict"),
    ("range: other bytes at the last range", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": f"bytes {len(CHUNKS[0])}-{END - 1}/*"}, bytes(len(CHUNKS[1])),
     "own", 409, "RangeConflict"),
    ("range: longer than the body", "POST", "/append_video/{id}",
     {**WEBM, "Content-Range": f"bytes {END}-{END + 199}/*"}, NEXT, "own", 409, "RangeConflict"),
    ("digest: other bytes", "POST", "/append_video/{id}", {**WEBM, "Content-Digest": sha256(b"x")},
     NEXT, "own", 400, "DigestMismatch"),
    ("digest: not base64", "POST", "/append_video/{id}", {**WEBM, "Content-Digest": "sha-256=:%%:"},
     NEXT, "own", 400, "DigestMismatch"),
    ("body: empty", "POST", "/append_video/{id}", WEBM, b"", "own", 400, "InvalidUpload"),
    ("body: over the limit", "POST", "/append_video/{id}", WEBM, b"\0" * 4_500_001, "own", 413,
     "ChunkTooLarge"),
    ("body: shorter than its Content-Length", "POST", "/append_video/{id}",
     {**WEBM, "Content-Length": str(len(NEXT) + 1)}, NEXT, "own", 400, "InvalidUpload"),
    ("form: two files", "POST", "/append_video/{id}", {"Content-Type": TWO_FILES_TYPE}, TWO_FILES,
     "own", 400, "InvalidUpload"),
    ("form: no file", "POST", "/append_video/{id}", {"Content-Type": NO_FILE_TYPE}, NO_FILE, "own",
     400, "InvalidUpload"),
    ("form: no closing boundary", "POST", "/append_video/{id}", {"Content-Type": GOOD_FORM_TYPE},
     GOOD_FORM[:-10], "own", 400, "InvalidUpload"),
    ("form: another boundary", "POST", "/append_video/{id}",
     {"Content-Type": "multipart/form-data; boundary=elsewhere"}, GOOD_FORM, "own", 400, "InvalidUpload"),
    ("type: text/html", "POST", "/append_video/{id}", {"Content-Type": "text/html"}, NEXT, "own", 415,
     "UnsupportedMediaType"),
    ("type: image/png", "POST", "/append_video/{id}", {"Content-Type": "image/png"}, NEXT, "own", 415,
     "UnsupportedMediaType"),
    ("piece: not an id", "POST", "/videos/{id}/pieces/..%2F..%2Fchunks/commit", {}, None, "own", 400,
     "InvalidUpload"),
    ("piece: never uploaded", "POST", "/videos/{id}/pieces/" + "0" * 32 + "/commit", {}, None, "own", 400,
     "InvalidUpload"),
    ("method: GET an append", "GET", "/append_video/{id}", {}, None, "own", 405, "MethodNotAllowedError"),
    ("method: PUT a status", "PUT", "/videos/{id}", WEBM, NEXT, "own", 405, "MethodNotAllowedError"),
    ("method: GET create", "GET", "/create_video", {}, None, None, 405, "MethodNotAllowedError"),
    ("method: GET finalize", "GET", "/videos/{id}/finalize", {}, None, "own", 405, "MethodNotAllowedError"),
]


def state(services) -> tuple:
    video = services.backend.catalog.get(1)
    # A status poll may note that a join is wanted; what is stored is what must not change.
    stored = dataclasses.replace(video, join_requested_at=None, join_urgent_at=None)
    return stored, dict(services.backend.store.objects)


@pytest.mark.parametrize("name, method, path, headers, body, token, status, code", CASES,
                         ids=[case[0] for case in CASES])
def test_a_malformed_request_is_a_4xx_json_error_and_changes_nothing(
        recording, name, method, path, headers, body, token, status, code):
    client, services, video_id, auth, other_token = recording
    before = state(services)
    headers = dict(headers)
    if token == "own":
        headers.update(auth)
    elif token == "other":
        headers["Authorization"] = f"Bearer {other_token}"
    elif token is not None:
        headers["Authorization"] = token
    response = client.http.request(method, path.format(id=video_id), headers=headers, body=body or b"")
    assert response.status_code == status, response.body[:300]
    error = json.loads(response.body)
    assert error["Code"] == code and error["Message"]
    assert len(error["Message"]) < 300  # a long bad value is not echoed back whole
    assert state(services) == before


def test_the_matrix_covers_at_least_forty_requests():
    assert len(CASES) >= 40
