"""schemathesis against the `make run` stack: requests generated from GET /openapi.json, each
answer checked against that same document (no 5xx, a documented status, Content-Type,
headers and body schema). Bounded (a few examples per operation) to finish in a couple of
minutes on a small machine; the README gives the command for a longer run."""
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import fixture_chunks

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
MAX_EXAMPLES = 25
# The coverage phase also sends methods no route has; `chalice local`'s http.server answers
# TRACE and QUERY itself with a 501 page before the app sees them (API Gateway would answer
# 403), which says nothing about the API: only the methods chalice local passes on.
CONFIG = {"phases": {"coverage": {"unexpected-methods": ["get", "put", "post", "delete", "patch", "options"]}}}


def _new_video(url: str) -> dict:
    created = requests.post(f"{url}/create_video", timeout=30)
    assert created.status_code == 201, created.text
    video = created.json()
    appended = requests.post(f"{url}/append_video/{video['video_id']}", data=fixture_chunks()[0],
                             headers={"Authorization": f"Bearer {video['upload_token']}",
                                      "Content-Type": "video/webm"}, timeout=30)
    assert appended.status_code == 200, appended.text
    return video


@pytest.fixture(scope="module")
def api_schema(live_server):
    return schemathesis.openapi.from_url(f"{live_server.url}/openapi.json",
                                         config=SchemathesisConfig.from_dict(CONFIG))


@pytest.fixture(scope="module")
def recording(live_server) -> dict:
    """A video with a chunk, shared by the cases: their ids and token reach past 401/404."""
    return _new_video(live_server.url)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.e2e
@schema.parametrize()
# database=None: no .hypothesis/ folder in the working tree; no deadline: the stack is slow
# on a busy 2-core machine, and time is not what is checked here.
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_one_the_document_gives(case, live_server, recording):
    video = recording
    video_id = case.path_parameters.get("video_id") if case.path_parameters else None
    if isinstance(video_id, int) and video_id >= 1:
        # A valid id is replaced by a real video's (invalid ones still probe the 400s). Calls
        # that end a video (delete, finalize) get one of their own, so that the shared one
        # stays open to appends.
        ends_it = case.method == "DELETE" or case.path.endswith("/finalize")
        video = _new_video(live_server.url) if ends_it else recording
        case.path_parameters["video_id"] = video["video_id"]
    if case.path.startswith("/watch/"):
        case.query = {**(case.query or {}), "token": video["playback_token"]}
    else:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {video['upload_token']}"}
    case.call_and_validate(base_url=live_server.url, checks=CHECKS, timeout=60)
