"""GET /openapi.json (chalicelib/openapi.py): a valid OpenAPI 3.1 document of exactly the
app's routes, whose schemas the real answers of those routes keep. The answers come from the
Chalice test client over the in-memory backend; tests/e2e/test_openapi_fuzz.py has
schemathesis probe the running server against the same document."""
import json
import time

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

import app as app_module
from chalicelib import openapi, responses
from chalicelib.errors import StorageUnavailable
from chalicelib.models import JoinMethod, MediaSummary, Status, Video
from chalicelib.settings import get_settings
from chalicelib.videos import VideoView
from tests.conftest import fixture_chunks


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi.document(app_module.app.routes, app_module.HTTP_STATUS)


def conforms(document: dict, path: str, method: str, response) -> None:
    """The answer is one the document gives for this operation: its status is documented,
    its Content-Type is, its required headers are there, its JSON body fits the schema."""
    operation = document["paths"][path][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} is not documented"
    headers = {name.lower(): value for name, value in response.headers.items()}
    for name, header in documented.get("headers", {}).items():
        header = resolve(document, header)
        if header.get("required"):
            assert name.lower() in headers, f"{method} {path} {response.status_code}: no {name}"
            validate(document, header["schema"], headers[name.lower()])
    content = documented.get("content")
    if not content:
        assert not response.body, f"{method} {path} {response.status_code} has an undocumented body"
        return
    # A view that sets none is sent as application/json by API Gateway and chalice local
    # alike (the test client leaves the header out).
    media_type = headers.get("content-type", "application/json").split(";")[0].strip()
    assert media_type in content, f"{method} {path} {response.status_code}: {media_type}"
    if media_type == "application/json":
        validate(document, content[media_type]["schema"], json.loads(response.body))


def resolve(document: dict, item: dict) -> dict:
    if "$ref" not in item:
        return item
    for part in item["$ref"].removeprefix("#/").split("/"):
        document = document[part]
    return document


def validate(document: dict, schema: dict, instance) -> None:
    # The document's components at the root, so that "#/components/..." refs resolve.
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(instance)


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(document).validate()


def test_it_documents_exactly_the_app_routes_and_methods(document):
    routes = {(path, method.lower()) for path, methods in app_module.app.routes.items() for method in methods}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == routes


def test_a_route_with_no_description_is_left_out_so_the_test_above_fails(document):
    from chalice import Chalice
    other = Chalice(app_name="other")
    other.route("/undescribed")(lambda: {})
    other.route("/health")(lambda: {})
    assert set(openapi.document(other.routes, app_module.HTTP_STATUS)["paths"]) == {"/health"}


def test_every_description_is_of_a_real_route():
    routes = {(path, method) for path, methods in app_module.app.routes.items() for method in methods}
    assert set(openapi.OPERATIONS) <= routes


def test_every_error_status_of_the_app_is_documented_with_its_codes(document):
    answered = {}
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                answered.setdefault(int(status), set()).update(
                    response["description"].split(", ") if int(status) >= 400 else [])
    for kind, status in app_module.HTTP_STATUS.items():
        assert kind.code in answered.get(status, set()), (kind.code, status)
    assert document["components"]["schemas"]["Error"]["properties"]["Code"]["enum"] == sorted(
        {kind.code for kind in app_module.HTTP_STATUS} | {"UnsupportedMediaType"})


def test_the_route_serves_the_document_as_json(client, document):
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body) == document
    conforms(document, "/openapi.json", "GET", response)


def created(client) -> tuple[dict, dict]:
    response = client.http.post("/create_video")
    return json.loads(response.body), {"Authorization": f"Bearer {json.loads(response.body)['upload_token']}"}


def test_create_append_status_and_playback_answers_conform(client, document):
    response = client.http.post("/create_video")
    conforms(document, "/create_video", "POST", response)
    video, auth = created(client)
    path = f"/append_video/{video['video_id']}"
    chunks = fixture_chunks()
    for chunk in chunks[:2]:
        appended = client.http.post(path, body=chunk, headers={**auth, "Content-Type": "video/webm"})
        assert appended.status_code == 200
        conforms(document, "/append_video/{video_id}", "POST", appended)
    again = client.http.post(path, body=chunks[1], headers={**auth, "Content-Type": "video/webm"})
    conforms(document, "/append_video/{video_id}", "POST", again)
    status = client.http.get(f"/videos/{video['video_id']}", headers=auth)
    assert status.status_code == 200
    conforms(document, "/videos/{video_id}", "GET", status)
    waiting = client.http.get(f"/get_video/{video['video_id']}?token={video['playback_token']}")
    assert waiting.status_code == 202
    conforms(document, "/get_video/{video_id}", "GET", waiting)


def test_the_other_calls_on_a_video_conform(client, document):
    video, auth = created(client)
    video_id = video["video_id"]
    client.http.post(f"/append_video/{video_id}", body=fixture_chunks()[0], headers=auth)
    for path, method, template, status in [
        (f"/videos/{video_id}/pieces", "POST", "/videos/{video_id}/pieces", 201),
        (f"/videos/{video_id}/playback_token", "POST", "/videos/{video_id}/playback_token", 200),
        (f"/videos/{video_id}/pieces/{'0' * 32}/commit", "POST",
         "/videos/{video_id}/pieces/{piece_id}/commit", 400),
        (f"/videos/{video_id}/finalize", "POST", "/videos/{video_id}/finalize", 200),
        (f"/append_video/{video_id}", "POST", "/append_video/{video_id}", 409),  # finalized
        (f"/videos/{video_id}", "DELETE", "/videos/{video_id}", 204),
    ]:
        response = client.http.request(method, path, headers=auth, body=b"more" if "append" in path else b"")
        assert response.status_code == status, (path, response.body)
        conforms(document, template, method, response)


@pytest.mark.parametrize("method, path, headers, body, status", [
    ("GET", "/get_video/abc", True, b"", 400),  # InvalidVideoId
    ("GET", "/get_video/{id}", True, b"", 400),  # NoChunks
    ("GET", "/videos/{id}", False, b"", 401),
    ("GET", "/videos/{id}?token=x", False, b"", 401),  # the status takes no URL token
    ("GET", "/get_video/{id}?token=x", False, b"", 403),
    ("GET", "/videos/999", True, b"", 404),
    ("POST", "/append_video/{id}", True, b"", 400),  # InvalidUpload: empty
    ("POST", "/append_video/{id}", True, b"\0" * 4_500_001, 413),
    ("POST", "/append_video/{id}", {"Content-Type": "image/png"}, b"x", 415),
    ("POST", "/append_video/{id}", {"Content-Range": "bytes=0-0"}, b"x", 416),
    ("POST", "/append_video/{id}", {"Content-Range": "bytes 5-5/*"}, b"x", 409),  # RangeConflict
    ("POST", "/append_video/{id}", {"Content-Digest": "sha-256=:AAAA:"}, b"x", 400),
])
def test_error_answers_conform(client, document, method, path, headers, body, status):
    video, auth = created(client)
    extra = headers if isinstance(headers, dict) else {}
    sent = {**(auth if headers else {}), "Content-Type": "video/webm", **extra}
    response = client.http.request(method, path.replace("{id}", str(video["video_id"])), headers=sent, body=body)
    assert response.status_code == status, response.body
    template = path.split("?")[0].replace("{id}", "{video_id}").replace("abc", "{video_id}").replace("999", "{video_id}")
    conforms(document, template, method, response)


def test_a_failed_video_is_a_conforming_422(client, document, services):
    video, auth = created(client)
    client.http.post(f"/append_video/{video['video_id']}", body=b"notes, not a recording", headers=auth)
    services.joiner.run(video["video_id"])
    response = client.http.get(f"/get_video/{video['video_id']}", headers=auth)
    assert response.status_code == 422
    conforms(document, "/get_video/{video_id}", "GET", response)
    status = client.http.get(f"/videos/{video['video_id']}", headers=auth)
    conforms(document, "/videos/{video_id}", "GET", status)  # with its "error"


def test_a_joined_video_status_conforms_with_every_media_field(document):
    # Every field MediaSummary can carry, as responses.video_body shapes a joined video.
    media = MediaSummary("webm", "video/webm", 2.5, 1000, JoinMethod.SEGMENTS, False, "vp8", 640, 480, "opus")
    now = time.time()
    video = Video(1, "hash", 2, 1000, now, now, compiled_chunks=2, compiled_key="k", media=media)
    body = responses.video_body(VideoView(video, Status.READY, "https://poster"))
    assert set(media.as_dict()) <= set(body)
    validate(document, {"$ref": "#/components/schemas/VideoStatus"}, body)
    audio_only = responses.video_body(VideoView(video, Status.READY, None))
    validate(document, {"$ref": "#/components/schemas/VideoStatus"}, audio_only)


def test_an_outage_body_conforms_to_the_503(document):
    error = StorageUnavailable("S3 did not answer (EndpointConnectionError); retry")
    documented = document["paths"]["/append_video/{video_id}"]["post"]["responses"]["503"]
    validate(document, documented["content"]["application/json"]["schema"], responses.error_body(error))
    assert "Retry-After" in responses.error_headers(error, get_settings())
    assert documented["headers"]["Retry-After"]["$ref"].endswith("/RetryAfter")


def test_the_schemas_refuse_a_field_the_document_does_not_name(document):
    # additionalProperties: false is what makes a field added to responses.py fail above.
    with pytest.raises(jsonschema.ValidationError):
        validate(document, {"$ref": "#/components/schemas/Appended"},
                 {"message": responses.FIRST_CHUNK_MESSAGE, "video_id": 1, "chunk_index": 0,
                  "bytes_received": 1, "committed_bytes": 1, "new_field": 1})


def test_the_pages_and_health_conform(client, document, services):
    conforms(document, "/", "GET", client.http.get("/"))
    conforms(document, "/health", "GET", client.http.get("/health"))
    video, auth = created(client)
    page = client.http.get(f"/watch/{video['video_id']}?token={video['playback_token']}")
    assert page.status_code == 200
    conforms(document, "/watch/{video_id}", "GET", page)
    missing = client.http.get(f"/watch/{video['video_id']}")
    assert missing.status_code == 401
    conforms(document, "/watch/{video_id}", "GET", missing)
    no_poster = client.http.get(f"/watch/{video['video_id']}/poster?token={video['playback_token']}")
    assert no_poster.status_code == 404
    conforms(document, "/watch/{video_id}/poster", "GET", no_poster)
