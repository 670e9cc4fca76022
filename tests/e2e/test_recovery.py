"""Faults against the running stack: the join worker killed in the middle of a join, and a
client that closes its connection halfway through a chunk."""
import signal
import socket
import time

import boto3
import psutil
import pytest
import requests

from tests.conftest import running_stack
from tests.media_factory import unseekable_stream

pytestmark = pytest.mark.e2e

STALL_SECONDS = 6  # JOIN_STALL_SECONDS for this stack: how long a dead join holds its lease
CHUNK = 300_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("recovery") / "server.log",
                       JOIN_STALL_SECONDS=str(STALL_SECONDS), JOIN_DELAY_SECONDS="2") as server:
        yield server


def create(url: str) -> tuple[int, dict]:
    created = requests.post(f"{url}/create_video/", timeout=10).json()
    return created["video_id"], {"Authorization": f"Bearer {created['upload_token']}"}


def record_in_catalog(stack, video_id: int) -> dict:
    table = boto3.resource("dynamodb", endpoint_url=stack.emulator_url,
                           region_name="us-east-1").Table("videos-local")
    return table.get_item(Key={"video_id": video_id}, ConsistentRead=True).get("Item", {})


def workers_of(stack) -> list[psutil.Process]:
    """The job worker processes (JOB_WORKERS of them: 2)."""
    workers = [child for child in psutil.Process(stack.process.pid).children(recursive=True)
               if "devtools.worker" in " ".join(child.cmdline())]
    assert len(workers) == 2, workers
    return workers


def test_a_join_whose_worker_dies_is_taken_over_and_polling_the_status_is_enough(stack):
    data = unseekable_stream("webm", "vp8", "opus", seconds=30.0, size="640x360", video_bitrate="4M")
    video_id, auth = create(stack.url)
    for first in range(0, len(data), CHUNK):
        chunk = data[first:first + CHUNK]
        response = requests.post(f"{stack.url}/append_video/{video_id}/", data=chunk, timeout=30, headers={
            **auth, "Content-Type": "video/webm",
            "Content-Range": f"bytes {first}-{first + len(chunk) - 1}/*"})
        assert response.status_code == 200, response.text
    chunks = -(-len(data) // CHUNK)
    workers = workers_of(stack)
    deadline = time.monotonic() + 60
    while record_in_catalog(stack, video_id).get("joining_chunks") != chunks:
        assert time.monotonic() < deadline, "the join never started"
        time.sleep(0.02)
    for worker in workers:  # mid-join: freeze them at once (whichever holds it), then kill
        worker.send_signal(signal.SIGSTOP)
    for worker in workers:
        worker.kill()
    killed_at = time.monotonic()
    assert record_in_catalog(stack, video_id).get("compiled_chunks") is None

    # Only the status is polled: no GET /get_video that would ask for an urgent join.
    while True:
        status = requests.get(f"{stack.url}/videos/{video_id}", headers=auth, timeout=10).json()
        if status["status"] != "processing" or time.monotonic() - killed_at > 90:
            break
        time.sleep(1)
    recovered_in = time.monotonic() - killed_at
    print(f"ready {recovered_in:.1f} s after the worker was killed")
    assert status["status"] == "ready", status
    assert status["duration"] == pytest.approx(30.0, abs=0.2)
    assert recovered_in < STALL_SECONDS + 30
    # other workers; the API stayed up throughout
    assert not {w.pid for w in workers_of(stack)} & {w.pid for w in workers}
    assert "a job worker exited" in stack.log.read_text()


def test_a_chunk_cut_short_by_the_client_is_refused_and_the_retry_stored_whole(stack):
    video_id, auth = create(stack.url)
    chunk = unseekable_stream("webm", "vp8", "opus", seconds=2.0)
    head = (f"POST /append_video/{video_id}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Type: video/webm\r\n"
            f"Content-Length: {len(chunk)}\r\nConnection: close\r\n\r\n").encode()
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head + chunk[:len(chunk) // 2])
        connection.shutdown(socket.SHUT_WR)  # the client goes away halfway through the body
        answer = b""
        while data := connection.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"InvalidUpload"' in answer
    status = requests.get(f"{stack.url}/videos/{video_id}", headers=auth, timeout=10).json()
    assert (status["chunk_count"], status["committed_bytes"]) == (0, 0)
    retry = requests.post(f"{stack.url}/append_video/{video_id}/", data=chunk, timeout=10,
                          headers={**auth, "Content-Type": "video/webm"})
    assert (retry.status_code, retry.json()["chunk_index"]) == (200, 0)
    assert retry.headers["Upload-Offset"] == str(len(chunk))
