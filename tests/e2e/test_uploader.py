"""`python -m uploader` against the running stack (`make run`'s, as `live_server` starts it),
as a person or a script runs it: a subprocess, its exit code, stdout and stderr. Requests go
through a relay (tests/e2e/relay.py) where a test needs to see what was sent or to fail
the network on cue; the uploader itself is never patched."""
import fcntl
import json
import math
import os
import pty
import random
import struct
import subprocess
import sys
import termios

import pytest
import requests

from tests.conftest import ROOT, fixture_chunks, free_port, wait_for_video
from tests.e2e.relay import Relay

pytestmark = pytest.mark.e2e

CHUNK = 8192  # small chunks: the 100 KB Chromium recording makes 13 of them


def uploader(*args, timeout: float = 180, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uploader", *map(str, args)], cwd=ROOT,
                          env=clean_env(), capture_output=True, text=True, timeout=timeout, **popen)


def clean_env(**extra) -> dict:
    """This environment without the uploader's own variables, which would change its
    defaults, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIDEO_API_URL", "VIDEO_API_TOKEN")}
    return {**env, **extra}


def served_video(url: str, video_id: int, token: str) -> bytes:
    """The compiled video, fetched as a player would: GET /get_video, then its 302."""
    answer = wait_for_video(lambda: requests.get(f"{url}/get_video/{video_id}/", allow_redirects=False,
                                                 headers={"Authorization": f"Bearer {token}"}, timeout=10))
    assert answer.status_code == 302, answer.text
    return requests.get(answer.headers["Location"], timeout=30).content


def status_of(url: str, video_id: int, token: str) -> dict:
    response = requests.get(f"{url}/videos/{video_id}", headers={"Authorization": f"Bearer {token}"},
                            timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def recording(tmp_path):
    """The Chromium fixture's chunks as one file: a 3-second WebM recording."""
    path = tmp_path / "recording.webm"
    path.write_bytes(b"".join(fixture_chunks()))
    return path


@pytest.fixture(scope="module")
def one_shot(live_server, tmp_path_factory):
    """The video the API makes of the recording uploaded in one go, without the uploader:
    the bytes every upload of it, however cut and resumed, must come back as."""
    data = b"".join(fixture_chunks())
    created = requests.post(f"{live_server.url}/create_video/", timeout=10).json()
    response = requests.post(f"{live_server.url}/append_video/{created['video_id']}/", data=data, timeout=30,
                             headers={"Authorization": f"Bearer {created['upload_token']}",
                                      "Content-Type": "video/webm"})
    assert response.status_code == 200, response.text
    return served_video(live_server.url, created["video_id"], created["upload_token"])


def test_an_upload_downloads_as_the_video_the_api_serves(live_server, recording, tmp_path):
    url = live_server.url
    result = uploader("upload", recording, "--api", url, "--chunk-size", "16k", "--json")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr  # stderr is a pipe here: no progress bar
    uploaded = json.loads(result.stdout)
    video_id, play = uploaded["video_id"], uploaded["playback_token"]
    size = recording.stat().st_size
    assert (uploaded["status"], uploaded["committed_bytes"], uploaded["chunk_count"]) == (
        "ready", size, math.ceil(size / 16384))
    assert uploaded["duration"] == pytest.approx(3.0, rel=0.10)
    assert uploaded["playback_url"] == f"{url}/get_video/{video_id}/?token={play}"
    assert not (tmp_path / "recording.webm.upload.json").exists()  # finalized: state removed

    out = tmp_path / "out.webm"
    fetched = uploader("download", video_id, "-o", out, "--api", url, "--token", play)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip() == str(out)
    assert out.read_bytes() == served_video(url, video_id, play)

    # The token may come from the environment; without --json, stdout is the status alone.
    status = subprocess.run([sys.executable, "-m", "uploader", "status", str(video_id), "--api", url],
                            cwd=ROOT, env=clean_env(VIDEO_API_TOKEN=play), capture_output=True,
                            text=True, timeout=60)
    assert (status.returncode, status.stdout) == (0, "ready\n"), status.stderr
    # Without --json, upload prints the video id alone, for $(...) in scripts.
    plain = uploader("upload", recording, "--api", url, "--no-wait")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip().isdigit() and int(plain.stdout) > video_id


def test_a_download_waits_while_the_video_is_being_joined_unless_told_not_to(
        live_server, recording, tmp_path):
    uploaded = uploader("upload", recording, "--api", live_server.url, "--json", "--chunk-size", "32k")
    assert uploaded.returncode == 0, uploaded.stderr
    video_id, play = json.loads(uploaded.stdout)["video_id"], json.loads(uploaded.stdout)["playback_token"]
    out = tmp_path / "out.webm"
    # The first GET /get_video is answered 202, as while the join runs.
    with Relay(live_server.url, faults={("playback", 1): "202"}) as relay:
        waited = uploader("download", video_id, "-o", out, "--api", relay.url, "--token", play)
        assert waited.returncode == 0, waited.stderr
        assert [e.status for e in relay.of("playback")] == [202, 302]
    assert out.read_bytes() == served_video(live_server.url, video_id, play)
    out.unlink()
    with Relay(live_server.url, faults={("playback", 1): "202"}) as relay:
        at_once = uploader("download", video_id, "-o", out, "--api", relay.url, "--token", play,
                           "--no-wait")
    assert at_once.returncode == 6
    assert f"video {video_id} is still being joined" in at_once.stderr
    assert not out.exists() and list(tmp_path.glob(".out.webm*")) == []


def test_an_upload_killed_halfway_resumes_without_sending_committed_bytes_again(
        live_server, recording, one_shot):
    size = recording.stat().st_size
    state_file = recording.with_name("recording.webm.upload.json")
    # The 4th chunk is held in the relay until the uploader has been killed, and then
    # reaches the API: committed, but the killed run never heard so.
    with Relay(live_server.url, faults={("append", 4): "hold"}) as relay:
        command = [sys.executable, "-m", "uploader", "upload", str(recording), "--api", relay.url,
                   "--chunk-size", str(CHUNK)]
        first = subprocess.Popen(command, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        try:
            assert relay.held.wait(60), "the 4th chunk never came"
        finally:
            first.kill()
            first.communicate(timeout=30)
        assert first.returncode == -9
        relay.release.set()
        assert relay.held_answered.wait(60)

        saved = json.loads(state_file.read_text())
        assert state_file.stat().st_mode & 0o777 == 0o600  # it holds the upload token
        before = status_of(live_server.url, saved["video_id"], saved["upload_token"])
        assert (before["chunk_count"], before["committed_bytes"], before["finalized"]) == (4, 4 * CHUNK, False)

        # `status FILE` finds the video, the API and the token in the state file.
        asked = uploader("status", recording, "--json")
        assert asked.returncode == 0, asked.stderr
        assert json.loads(asked.stdout)["committed_bytes"] == 4 * CHUNK

        mark = relay.mark()
        second = uploader(*command[3:], "--json")
        assert second.returncode == 0, second.stderr
        assert f"resuming video {saved['video_id']} at byte {4 * CHUNK}" in second.stderr
        appends = relay.of("append", since=mark)

    # The second run sent the bytes the API did not have, each once, from where it ended.
    assert appends[0].content_range == f"bytes {4 * CHUNK}-{5 * CHUNK - 1}/{size}"
    assert sum(a.body_bytes for a in appends) == size - 4 * CHUNK
    assert all(a.status == 200 for a in appends)
    done = json.loads(second.stdout)
    assert (done["video_id"], done["resumed_from"], done["sent_bytes"]) == (
        saved["video_id"], 4 * CHUNK, size - 4 * CHUNK)
    assert (done["status"], done["committed_bytes"], done["chunk_count"]) == (
        "ready", size, math.ceil(size / CHUNK))
    assert done["duration"] == pytest.approx(3.0, rel=0.10)
    assert not state_file.exists()
    assert served_video(live_server.url, done["video_id"], done["playback_token"]) == one_shot


def test_an_upload_killed_after_its_last_chunk_only_finalizes_and_waits_when_resumed(
        live_server, recording):
    size = recording.stat().st_size
    with Relay(live_server.url, faults={("finalize", 1): "hold"}) as relay:
        command = [sys.executable, "-m", "uploader", "upload", str(recording), "--api", relay.url,
                   "--chunk-size", "32k"]
        first = subprocess.Popen(command, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        try:
            assert relay.held.wait(60), "the finalize never came"
        finally:
            first.kill()
            first.communicate(timeout=30)
        relay.release.set()
        mark = relay.mark()
        second = uploader(*command[3:], "--json")
        assert second.returncode == 0, second.stderr
        assert relay.of("append", since=mark) == [] and relay.of("piece", since=mark) == []
    done = json.loads(second.stdout)
    assert f"resuming video {done['video_id']} at byte {size} of {size}" in second.stderr
    assert (done["status"], done["committed_bytes"], done["chunk_count"], done["sent_bytes"]) == (
        "ready", size, 4, 0)


def test_a_chunk_of_the_killed_run_landing_late_is_a_conflict_the_resumed_run_continues_after(
        live_server, recording, tmp_path, one_shot):
    """The killed run's 4th chunk reaches the API only after the resumed run (with larger
    chunks) read the offset and sent its first chunk there: that chunk gets a 409 naming the
    new offset, and the upload continues from it."""
    size = recording.stat().st_size
    state_dir = tmp_path / "state"
    with Relay(live_server.url, faults={("append", 4): "hold", ("append", 5): "after-hold"}) as relay:
        command = [sys.executable, "-m", "uploader", "upload", str(recording), "--api", relay.url,
                   "--state-dir", str(state_dir)]
        first = subprocess.Popen([*command, "--chunk-size", str(CHUNK)], cwd=ROOT, env=clean_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert relay.held.wait(60), "the 4th chunk never came"
        finally:
            first.kill()
            first.communicate(timeout=30)
        assert [p.name for p in state_dir.iterdir()][0].startswith("recording.webm.")
        second = uploader(*command[3:], "--chunk-size", str(3 * CHUNK // 2), "--json")
        assert second.returncode == 0, second.stderr
        late, conflicted = relay.of("append")[3:5]

    assert (late.number, late.api_status) == (4, 200)
    assert (conflicted.content_range, conflicted.status) == (f"bytes {3 * CHUNK}-{9 * CHUNK // 2 - 1}/{size}", 409)
    assert f"continuing from byte {4 * CHUNK}" in second.stderr
    done = json.loads(second.stdout)
    assert (done["status"], done["committed_bytes"]) == ("ready", size)
    assert done["chunk_count"] == 4 + math.ceil((size - 4 * CHUNK) / (3 * CHUNK // 2))
    assert served_video(live_server.url, done["video_id"], done["playback_token"]) == one_shot
    assert list(state_dir.iterdir()) == []


def test_transient_failures_are_retried_and_nothing_is_stored_twice(live_server, recording, one_shot):
    faults = {("create", 1): "503", ("append", 2): "503", ("append", 3): "lose-answer",
              ("append", 5): "429", ("append", 7): "bad-range", ("finalize", 1): "lose-answer"}
    size = recording.stat().st_size
    with Relay(live_server.url, faults=faults) as relay:
        result = uploader("upload", recording, "--api", relay.url, "--chunk-size", CHUNK, "--json")
        assert result.returncode == 0, result.stderr
        appends = relay.of("append")
    done = json.loads(result.stdout)
    # The lost answer's retry was recognised as one; the 416 (the API refusing the mangled
    # range for real) sent the uploader to the status, and it went on from there.
    assert [(a.number, a.api_status) for a in appends if a.number in (3, 4, 7)] == [
        (3, 200), (4, 200), (7, 416)]
    assert (done["status"], done["committed_bytes"], done["chunk_count"]) == (
        "ready", size, math.ceil(size / CHUNK))
    assert "503 Service Unavailable; retry 1 of 5" in result.stderr
    assert "the connection closed without an answer; retry 1 of 5" in result.stderr
    assert "429 Too Many Requests; retry 1 of 5" in result.stderr
    assert served_video(live_server.url, done["video_id"], done["playback_token"]) == one_shot


def test_chunks_over_the_body_limit_go_through_presigned_urls(live_server, tmp_path):
    from tests.media_factory import unseekable_stream
    path = tmp_path / "large.webm"
    path.write_bytes(unseekable_stream("webm", "vp8", "opus", seconds=12.0, video_bitrate="5M"))
    size = path.stat().st_size
    assert size > 5 * 1024 * 1024 + 100_000
    with Relay(live_server.url) as relay:
        result = uploader("upload", path, "--api", relay.url, "--chunk-size", "5M", "--json")
        assert result.returncode == 0, result.stderr
        piece, commit, appends = relay.of("piece"), relay.of("commit"), relay.of("append")
    # 5 MiB is over the API's 4.5 MB: a piece, never tried as an append; the rest fits one.
    assert [(e.status, e.content_range) for e in commit] == [(200, f"bytes 0-{5 * 1024 * 1024 - 1}/{size}")]
    assert len(piece) == 1
    assert [(e.status, e.body_bytes) for e in appends] == [(200, size - 5 * 1024 * 1024)]
    done = json.loads(result.stdout)
    assert (done["status"], done["committed_bytes"], done["chunk_count"]) == ("ready", size, 2)
    assert done["duration"] == pytest.approx(12.0, abs=0.2)


def test_the_pieces_option_sends_every_chunk_through_a_presigned_url(live_server, recording, one_shot):
    size = recording.stat().st_size
    with Relay(live_server.url) as relay:
        result = uploader("upload", recording, "--api", relay.url, "--chunk-size", "40k", "--pieces",
                          "--json")
        assert result.returncode == 0, result.stderr
        assert relay.of("append") == []
        assert [e.status for e in relay.of("commit")] == [200, 200, 200]
    done = json.loads(result.stdout)
    assert (done["status"], done["committed_bytes"], done["chunk_count"]) == ("ready", size, 3)
    assert served_video(live_server.url, done["video_id"], done["playback_token"]) == one_shot


def test_a_413_on_the_way_sends_that_chunk_and_larger_ones_as_pieces(live_server, recording, one_shot):
    """A proxy in front of the API with a lower body limit than the uploader assumes."""
    size = recording.stat().st_size
    with Relay(live_server.url, body_limit=50_000) as relay:
        result = uploader("upload", recording, "--api", relay.url, "--chunk-size", "64k", "--json")
        assert result.returncode == 0, result.stderr
        appends, commits = relay.of("append"), relay.of("commit")
    assert [(a.status, a.body_bytes) for a in appends] == [(413, 65536), (200, size - 65536)]
    assert [c.content_range for c in commits] == [f"bytes 0-65535/{size}"]
    done = json.loads(result.stdout)
    assert (done["status"], done["committed_bytes"], done["chunk_count"]) == ("ready", size, 2)
    assert served_video(live_server.url, done["video_id"], done["playback_token"]) == one_shot


def test_an_unreachable_api_exits_4_with_the_reason(recording):
    nobody = f"http://127.0.0.1:{free_port()}"
    result = uploader("upload", recording, "--api", nobody, "--retries", "2")
    assert result.returncode == 4
    assert result.stdout == ""
    assert f"uploader: error: cannot reach {nobody}: connection refused (POST /create_video/, 3 tries)" in result.stderr
    assert result.stderr.count("connection refused; retry") == 2
    assert not recording.with_name("recording.webm.upload.json").exists()


def test_a_video_that_does_not_exist_exits_3_with_the_api_s_reason(live_server, tmp_path):
    for command in (["status", "999999"], ["download", "999999", "-o", tmp_path / "x.webm"]):
        result = uploader(*command, "--api", live_server.url, "--token", "some-token")
        assert result.returncode == 3, result.stderr
        assert result.stdout == ""
        assert "404 VideoNotFound: there is no video 999999" in result.stderr
    assert not (tmp_path / "x.webm").exists()


def test_a_state_file_of_a_video_that_is_gone_is_refused_and_restart_starts_anew(live_server, recording):
    state_file = recording.with_name("recording.webm.upload.json")
    stat = recording.stat()
    state_file.write_text(json.dumps({
        "api": live_server.url, "video_id": 999999, "upload_token": "t", "playback_token": "p",
        "file_size": stat.st_size, "file_mtime_ns": stat.st_mtime_ns}))
    refused = uploader("upload", recording, "--no-wait")
    assert refused.returncode == 2
    assert "video 999999 of" in refused.stderr and "--restart" in refused.stderr
    restarted = uploader("upload", recording, "--no-wait", "--restart", "--api", live_server.url)
    assert restarted.returncode == 0, restarted.stderr
    assert int(restarted.stdout) != 999999
    assert not state_file.exists()


def test_a_recording_that_cannot_be_joined_exits_5(live_server, tmp_path):
    path = tmp_path / "noise.webm"
    path.write_bytes(random.Random(5).randbytes(30_000))
    result = uploader("upload", path, "--api", live_server.url, "--json")
    assert result.returncode == 5, result.stderr
    assert "failed to join" in result.stderr
    # Uploaded all the same: the result is printed, for the script to look into.
    done = json.loads(result.stdout)
    assert (done["status"], done["committed_bytes"]) == ("failed", 30_000)
    assert done["error"] in result.stderr
    status = uploader("status", done["video_id"], "--api", live_server.url, "--token",
                      done["playback_token"])
    assert (status.returncode, status.stdout) == (5, "failed\n")


def run_on_a_terminal(*args) -> tuple[int, str]:
    """The uploader with its stderr on a pseudo-terminal of 100 columns, as in a shell."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "uploader", *map(str, args)], cwd=ROOT,
                               env=clean_env(), stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(master)
    return process.wait(60), seen.decode(errors="replace")


def test_the_progress_bar_is_drawn_on_a_terminal_unless_quiet(live_server, recording):
    code, seen = run_on_a_terminal("upload", recording, "--api", live_server.url, "--chunk-size", CHUNK,
                                   "--no-wait")
    assert code == 0, seen
    assert "100%|" in seen and "\r" in seen
    code, seen = run_on_a_terminal("upload", recording, "--api", live_server.url, "--chunk-size", CHUNK,
                                   "--no-wait", "--quiet")
    assert (code, seen) == (0, "")
