"""The running stack over HTTP: moto server + chalice local + join worker + real ffmpeg,
as `make run` starts it. Streams real Chromium MediaRecorder chunks and checks what comes
back is a playable, seekable video."""
import io
import os
import subprocess

import pytest
import requests

from tests.conftest import ROOT, fixture_chunks, running_stack, wait_for_video
from tests.inspect_media import matroska_has_cues
from tests.media_factory import cut, unseekable_stream

pytestmark = pytest.mark.e2e


def create(url: str) -> tuple[int, str]:
    response = requests.post(f"{url}/create_video/", timeout=10)
    assert response.status_code == 201, response.text
    created = response.json()
    return created["video_id"], created["upload_token"]


def decode_errors(path: str) -> str:
    result = subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-i", path, "-f", "null", "-"],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr.decode()


def test_recorded_chunks_come_back_as_one_seekable_video(live_server, tmp_path):
    url = live_server.url
    video_id, token = create(url)
    auth = {"Authorization": f"Bearer {token}"}
    messages = []
    for chunk in fixture_chunks():
        response = requests.post(f"{url}/append_video/{video_id}/", data=chunk, timeout=10,
                                 headers={**auth, "Content-Type": "video/webm;codecs=vp8,opus"})
        assert response.status_code == 200, response.text
        messages.append(response.json()["message"])
    assert messages[0] == "Video added successfully"
    assert set(messages[1:]) == {"Video appended and joined successfully"}

    answer = wait_for_video(lambda: requests.get(f"{url}/get_video/{video_id}/", headers=auth,
                                                 allow_redirects=False, timeout=10))
    assert answer.status_code == 302, answer.text
    video = requests.get(answer.headers["Location"], timeout=10)
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/webm"
    assert video.headers.get("Content-Disposition") == "inline"
    path = tmp_path / "video.webm"
    path.write_bytes(video.content)

    assert decode_errors(str(path)) == ""
    status = requests.get(f"{url}/videos/{video_id}", headers=auth, timeout=10).json()
    assert status["status"] == "ready"
    assert status["duration"] == pytest.approx(3.0, rel=0.10)
    assert matroska_has_cues(io.BytesIO(video.content))
    # The input had neither: the Cues come from the remux.
    assert not matroska_has_cues(io.BytesIO(b"".join(fixture_chunks())))

    # The presigned URL honours Range, so players can seek without downloading it all.
    ranged = requests.get(answer.headers["Location"], headers={"Range": "bytes=100-199"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.content == video.content[100:200]


@pytest.fixture(scope="module")
def two_second_pieces(tmp_path_factory):
    """A stack of its own whose renditions are cut in pieces of about 2 s: a few seconds of
    recording make several, for the JOB_WORKERS workers to share."""
    with running_stack(tmp_path_factory.mktemp("pieces") / "server.log",
                       RENDITION_PIECE_SECONDS="2") as server:
        yield server


def test_a_vp8_recording_gets_an_h264_aac_rendition_made_in_pieces_by_the_workers(two_second_pieces, tmp_path):
    live_server = two_second_pieces
    url = live_server.url
    video_id, token = create(url)
    auth = {"Authorization": f"Bearer {token}"}
    for chunk in cut(unseekable_stream("webm", "vp8", "opus", seconds=6.0), pieces=5):
        response = requests.post(f"{url}/append_video/{video_id}/", data=chunk, timeout=10,
                                 headers={**auth, "Content-Type": "video/webm"})
        assert response.status_code == 200, response.text
    assert requests.post(f"{url}/videos/{video_id}/finalize", headers=auth, timeout=10).status_code == 200

    mp4 = lambda: requests.get(f"{url}/get_video/{video_id}/?format=mp4", headers=auth,  # noqa: E731
                               allow_redirects=False, timeout=10)
    answer = wait_for_video(mp4, timeout=120)
    assert answer.status_code == 302, answer.text
    video = requests.get(answer.headers["Location"], timeout=10)
    assert (video.status_code, video.headers["Content-Type"]) == (200, "video/mp4")
    path = tmp_path / "rendition.mp4"
    path.write_bytes(video.content)
    assert decode_errors(str(path)) == ""
    status = requests.get(f"{url}/videos/{video_id}", headers=auth, timeout=10).json()
    [rendition] = status["renditions"]
    assert (rendition["state"], rendition["video_codec"], rendition["audio_codec"]) == ("ready", "h264", "aac")
    assert rendition["byte_size"] == len(video.content)
    # made in three pieces of 2 s, each its own job: the workers logged each step
    log = live_server.log.read_text()
    assert log.count('"message":"rendition_piece job"') >= 3
    assert '"message":"rendition_assemble job"' in log


def readme_session() -> str:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- session -->", 1)[1].split("<!-- /session -->", 1)[0]
    return block.strip().removeprefix("```sh").removesuffix("```")


def test_the_curl_session_of_the_readme_works_as_printed(live_server):
    """The README's first-screen session, run as printed from the top of the repository."""
    for leftover in ("/tmp/video.json", "/tmp/video.webm"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_session()], cwd=ROOT,
                            env={**os.environ, "API": live_server.url},
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode()
    assert '"message":"Video added successfully"' in output
    assert '"message":"Video appended and joined successfully"' in output
    assert '"status":"ready"' in output
    with open("/tmp/video.webm", "rb") as video:
        assert matroska_has_cues(video)
    assert decode_errors("/tmp/video.webm") == ""


@pytest.mark.parametrize("path", ["/create_video", "/create_video/"])
def test_routes_work_with_and_without_the_trailing_slash(live_server, path):
    response = requests.post(live_server.url + path, timeout=10)
    assert response.status_code == 201


def test_cors_preflight_allows_the_upload_headers(live_server):
    response = requests.options(f"{live_server.url}/append_video/1/", timeout=10, headers={
        "Origin": "https://recorder.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,content-range"})
    assert response.status_code == 200
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "content-range"} <= allowed
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_errors_over_http_are_json(live_server):
    url = live_server.url
    video_id, token = create(url)
    auth = {"Authorization": f"Bearer {token}"}
    cases = [
        (requests.get(f"{url}/get_video/abc/", headers=auth, timeout=10), 400, "InvalidVideoId"),
        (requests.get(f"{url}/get_video/{video_id}/", headers=auth, timeout=10), 400, "NoChunks"),
        (requests.get(f"{url}/get_video/{video_id}/", timeout=10), 401, "MissingToken"),
        (requests.get(f"{url}/videos/999999", headers=auth, timeout=10), 404, "VideoNotFound"),
        (requests.post(f"{url}/append_video/{video_id}/", data=b"\0" * 4_600_000, timeout=30,
                       headers={**auth, "Content-Type": "application/octet-stream"}),
         413, "ChunkTooLarge"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["Code"] == code


def test_a_20_mb_piece_goes_to_s3_directly_and_joins_with_the_chunks_around_it(live_server, tmp_path):
    """The body limit is 4.5 MB; a whole recording uploaded at the end is larger. The API
    hands out a presigned PUT, the bytes go to S3 without passing through it, and the
    commit puts them in the sequence."""
    from tests.media_factory import unseekable_stream
    url = live_server.url
    data = unseekable_stream("webm", "vp8", "opus", seconds=40.0, video_bitrate="5M")
    assert len(data) > 21_000_000
    video_id, token = create(url)
    auth = {"Authorization": f"Bearer {token}"}
    head, piece_bytes, tail = data[:300_000], data[300_000:20_300_000], data[20_300_000:]
    assert requests.post(f"{url}/append_video/{video_id}/", data=head, timeout=10,
                         headers={**auth, "Content-Type": "video/webm"}).status_code == 200
    piece = requests.post(f"{url}/videos/{video_id}/pieces", headers=auth, timeout=10).json()
    assert piece["first_byte"] == len(head)
    put = requests.put(piece["upload_url"], data=piece_bytes, timeout=60)
    assert put.status_code == 200, put.text[:300]
    commit_url = f"{url}/videos/{video_id}/pieces/{piece['piece_id']}/commit"
    where = {"Content-Range": f"bytes {len(head)}-{len(head) + len(piece_bytes) - 1}/*"}
    committed = requests.post(commit_url, headers={**auth, **where}, timeout=60)
    assert committed.status_code == 200, committed.text
    assert committed.json()["chunk_index"] == 1
    assert committed.headers["Upload-Offset"] == str(len(head) + len(piece_bytes))
    again = requests.post(commit_url, headers={**auth, **where}, timeout=60)  # a retry
    assert (again.status_code, again.json()["chunk_index"]) == (200, 1)
    for first in range(len(data) - len(tail), len(data), 1_000_000):
        chunk = data[first:first + 1_000_000]
        appended = requests.post(f"{url}/append_video/{video_id}/", data=chunk, timeout=10, headers={
            **auth, "Content-Type": "video/webm",
            "Content-Range": f"bytes {first}-{first + len(chunk) - 1}/{len(data)}"})
        assert appended.status_code == 200, appended.text  # the last reaches the total: finalized
    chunks = 2 + -(-len(tail) // 1_000_000)
    answer = wait_for_video(lambda: requests.get(f"{url}/get_video/{video_id}/", headers=auth,
                                                 allow_redirects=False, timeout=10), timeout=120)
    assert answer.status_code == 302, answer.text
    video = requests.get(answer.headers["Location"], timeout=60).content
    path = tmp_path / "video.webm"
    path.write_bytes(video)
    assert decode_errors(str(path)) == ""
    status = requests.get(f"{url}/videos/{video_id}", headers=auth, timeout=10).json()
    assert (status["status"], status["chunk_count"], status["finalized"]) == ("ready", chunks, True)
    assert status["duration"] == pytest.approx(40.0, abs=0.2)
