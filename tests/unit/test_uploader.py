"""The uploader's pure parts: sizes, back-off and retries, error mapping, the state file,
the wait for a join, and the command line's usage errors. No process, no network: the
retry loop is handed a send() that answers from a list, and requests' own Response objects
stand in for answers."""
import email.utils
import io
import json
import random
import stat
from pathlib import Path

import pytest
import requests

from chalicelib.uploads import byte_range, check_digest
from uploader import state as states
from uploader.cli import main
from uploader.client import _failure, content_digest, content_range
from uploader.errors import ApiRefused, ApiUnavailable, JoinFailed, RangeConflict, UsageError, WaitTimedOut
from uploader.progress import Reporter, bar_wanted
from uploader.retry import (RetryPolicy, backoff_delay, is_retryable_status, retry_after_seconds,
                            send_with_retries)
from uploader.sizes import format_size, parse_size
from uploader.upload import _SliceReader, content_type_of, wait_until_joined


@pytest.mark.parametrize("text, size", [
    ("4194304", 4194304), ("512k", 524288), ("512K", 524288), ("4M", 4194304), ("4m", 4194304),
    ("4MiB", 4194304), ("4MB", 4194304), ("1.5M", 1572864), ("1G", 1024 ** 3), (" 64k ", 65536), ("1", 1)])
def test_sizes_are_bytes_or_binary_multiples(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "0.1", "-1", "4T", "k", "4 M B", "1e6", "four"])
def test_what_is_not_a_size_is_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_sizes_print_for_people():
    assert [format_size(n) for n in (512, 1536, 4 * 1024 ** 2, 3 * 1024 ** 3)] == [
        "512 B", "1.5 KiB", "4.0 MiB", "3.0 GiB"]


class Highest(random.Random):
    """Jitter at its top: the back-off's bound itself."""

    def uniform(self, a, b):
        return b


def test_the_back_off_doubles_up_to_its_cap():
    assert [backoff_delay(retry, 0.5, 5.0, Highest()) for retry in range(6)] == [0.5, 1, 2, 4, 5, 5]


def test_the_back_off_is_jittered_between_zero_and_its_bound():
    rng = random.Random(3)
    delays = [backoff_delay(3, 0.5, 30.0, rng) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) == 200  # not one fixed wait that clients cut off together share


def test_retry_after_is_seconds_or_an_http_date():
    now = 1_000_000_000.0
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(email.utils.formatdate(now + 10, usegmt=True), now=now) == 10.0
    assert retry_after_seconds(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert [retry_after_seconds(v) for v in (None, "", "soon", "-1")] == [None, None, None, None]


def test_a_retry_waits_at_least_what_retry_after_asks_and_at_most_the_policy_s_limit():
    policy = RetryPolicy(base=0.5, cap=30.0, max_retry_after=60.0)
    assert policy.delay(0, 2.0, Highest()) == 2.0
    assert policy.delay(4, 2.0, Highest()) == 8.0  # the back-off, when longer
    assert policy.delay(0, 3600.0, Highest()) == 60.0


@pytest.mark.parametrize("status, retried", [
    (200, False), (400, False), (404, False), (409, False), (413, False), (416, False),
    (408, True), (429, True), (500, True), (501, False), (502, True), (503, True), (504, True)])
def test_which_answers_are_retried(status, retried):
    assert is_retryable_status(status) is retried


def answer(status: int, headers: dict | None = None, body: bytes = b"") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = {200: "OK", 503: "Service Unavailable", 404: "Not Found"}.get(status, "")
    response.headers.update(headers or {})
    response._content, response._content_consumed = body, True  # as once read off the wire
    return response


class Answers:
    """send() for the retry loop: each call gives the next answer, or raises it."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_connection_errors_and_5xx_are_retried_until_an_answer_comes():
    send = Answers(requests.ConnectionError("Connection refused"), answer(503, {"Retry-After": "2"}),
                   answer(200))
    slept, told = [], []
    response = send_with_retries(send, RetryPolicy(retries=5, base=0.5), sleep=slept.append,
                                 on_retry=lambda *said: told.append(said), rng=random.Random(1))
    assert response.status_code == 200
    assert send.calls == 3
    assert 0 <= slept[0] <= 0.5 and slept[1] >= 2.0  # the 503's Retry-After
    assert [(why, number) for why, _, number in told] == [("connection refused", 1),
                                                           ("503 Service Unavailable", 2)]


def test_a_4xx_is_answered_at_once():
    send = Answers(answer(404), answer(200))
    assert send_with_retries(send, RetryPolicy(), sleep=pytest.fail).status_code == 404
    assert send.calls == 1


def test_when_the_retries_run_out_the_last_answer_or_error_stands():
    send = Answers(*[answer(503) for _ in range(3)])
    assert send_with_retries(send, RetryPolicy(retries=2), sleep=lambda s: None).status_code == 503
    assert send.calls == 3
    send = Answers(*[requests.ConnectionError("Connection refused") for _ in range(3)])
    with pytest.raises(requests.ConnectionError):
        send_with_retries(send, RetryPolicy(retries=2), sleep=lambda s: None)
    assert send.calls == 3


def api_answer(status: int, body: dict, headers: dict | None = None) -> requests.Response:
    return answer(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode())


def test_a_409_names_the_offset_to_continue_from():
    error = _failure(api_answer(409, {"Code": "RangeConflict", "Message": "m", "committed_bytes": 300},
                                {"Upload-Offset": "300"}), "POST /append_video/1/", 1)
    assert isinstance(error, RangeConflict) and error.offset == 300 and error.exit_code == 3
    error = _failure(api_answer(416, {"Code": "InvalidRange", "Message": "m"}), "POST /append_video/1/", 1)
    assert isinstance(error, RangeConflict) and error.offset is None


def test_answers_become_refusals_or_outages():
    refused = _failure(api_answer(404, {"Code": "VideoNotFound", "Message": "there is no video 9"}),
                       "GET /videos/9", 6)
    assert type(refused) is ApiRefused and refused.exit_code == 3
    assert str(refused) == "the API refused GET /videos/9: 404 VideoNotFound: there is no video 9"
    outage = _failure(api_answer(503, {"Code": "StorageUnavailable", "Message": "S3"}), "GET /videos/9", 6)
    assert type(outage) is ApiUnavailable and outage.exit_code == 4 and "6 tries" in str(outage)
    html = _failure(answer(413, {"Content-Type": "text/html"}, b"<h1>413 Too Large</h1>"), "POST /x", 1)
    assert (type(html), html.status, html.code) == (ApiRefused, 413, None)


def test_the_headers_of_a_chunk_parse_as_the_api_reads_them():
    chunk = b"\x1aE\xdf\xa3 some bytes"
    check_digest(chunk, content_digest(chunk))  # the API's own check: raises on a mismatch
    where = byte_range(content_range(100, len(chunk), 1000))
    assert (where.first, where.last, where.total) == (100, 100 + len(chunk) - 1, 1000)


def test_a_piece_is_read_from_its_slice_of_the_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 4)
    counted = []
    reader = _SliceReader(path, 100, 300, counted.append)
    assert len(reader) == 300
    read = b"".join(iter(lambda: reader.read(128), b""))
    assert read == path.read_bytes()[100:400]
    assert sum(counted) == 300


def test_the_content_type_follows_the_extension():
    assert [content_type_of(Path(p)) for p in ("a.webm", "a.MP4", "a.mkv", "a.bin")] == [
        "video/webm", "video/mp4", "video/x-matroska", "application/octet-stream"]


def a_state() -> states.UploadState:
    return states.UploadState("http://127.0.0.1:8000", 7, "upload-secret", "playback", 10, 123)


def test_the_state_file_is_private_and_reads_back(tmp_path):
    path = tmp_path / "rec.webm.upload.json"
    states.save(path, a_state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert states.load(path) == a_state()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    states.remove(path)
    assert states.load(path) is None


def test_a_damaged_state_file_is_a_usage_error(tmp_path):
    path = tmp_path / "s.upload.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="--restart"):
        states.load(path)


def test_the_state_file_is_next_to_the_file_or_in_the_state_dir(tmp_path):
    one, other = tmp_path / "a" / "rec.webm", tmp_path / "b" / "rec.webm"
    assert states.state_path(one) == tmp_path / "a" / "rec.webm.upload.json"
    in_dir = states.state_path(one, tmp_path / "s"), states.state_path(other, tmp_path / "s")
    assert in_dir[0].parent == tmp_path / "s" and in_dir[0].name.startswith("rec.webm.")
    assert in_dir[0] != in_dir[1]  # same name, different folders: different uploads


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def statuses(*names):
    pending = [{"video_id": 4, "status": name, "chunk_count": 1, "committed_bytes": 9,
                "error": "no frames" if name == "failed" else None} for name in names]
    return lambda: pending.pop(0)


def test_waiting_for_a_join_ends_when_it_is_ready_or_failed():
    clock = FakeClock()
    quiet = Reporter(quiet=True)
    done = wait_until_joined(statuses("processing", "processing", "ready"), 60, quiet, clock.sleep, clock)
    assert done["status"] == "ready"
    with pytest.raises(JoinFailed, match="video 4 failed to join: no frames") as failed:
        wait_until_joined(statuses("processing", "failed"), 60, quiet, clock.sleep, clock)
    assert failed.value.exit_code == 5 and failed.value.status["status"] == "failed"


def test_waiting_for_a_join_gives_up_after_the_timeout():
    clock = FakeClock()
    with pytest.raises(WaitTimedOut) as waited:
        wait_until_joined(lambda: {"video_id": 4, "status": "processing"}, 10, Reporter(quiet=True),
                          clock.sleep, clock)
    assert waited.value.exit_code == 6
    assert clock.now == pytest.approx(10.0)  # it slept no longer than the timeout


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_is_for_a_terminal_and_not_with_quiet():
    assert bar_wanted(False, Terminal()) is True
    assert bar_wanted(True, Terminal()) is False
    assert bar_wanted(False, io.StringIO()) is False


@pytest.mark.parametrize("argv", [
    ["upload", "f.webm", "--chunk-size", "0"], ["upload", "f.webm", "--chunk-size", "lots"],
    ["upload", "f.webm", "--api", "127.0.0.1:8000"], ["upload", "f.webm", "--retries", "-1"],
    ["download", "5"], ["frobnicate"], []])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_status_without_a_token_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("VIDEO_API_TOKEN", raising=False)
    assert main(["status", "5"]) == 2
    assert "no token for video 5: give --token or set VIDEO_API_TOKEN" in capsys.readouterr().err


def test_status_of_a_file_with_no_upload_under_way_exits_2(tmp_path, capsys):
    assert main(["status", str(tmp_path / "rec.webm")]) == 2
    assert "neither a video id nor a file whose upload is under way" in capsys.readouterr().err


def test_an_upload_of_an_empty_or_missing_file_exits_2(tmp_path, capsys):
    (tmp_path / "empty.webm").write_bytes(b"")
    assert main(["upload", str(tmp_path / "empty.webm")]) == 2
    assert main(["upload", str(tmp_path / "missing.webm")]) == 2
    err = capsys.readouterr().err
    assert "is empty" in err and "is not a file" in err


def interrupted_upload(tmp_path):
    path = tmp_path / "rec.webm"
    path.write_bytes(b"x" * 100)
    info = path.stat()
    states.save(states.state_path(path), states.UploadState(
        "http://127.0.0.1:8000", 7, "t", "p", info.st_size, info.st_mtime_ns))
    return path


def test_a_resume_refuses_a_file_changed_since_and_another_api(tmp_path, capsys):
    """Both are found before any request: the bytes the API holds would not continue these."""
    path = interrupted_upload(tmp_path)
    assert main(["upload", str(path), "--api", "http://127.0.0.1:9999"]) == 2
    assert "leave out --api to resume it, or use --restart" in capsys.readouterr().err
    path.write_bytes(b"y" * 101)
    assert main(["upload", str(path)]) == 2
    assert f"{path} changed since its upload to video 7 began" in capsys.readouterr().err


def test_every_content_type_the_uploader_sends_is_one_the_api_takes():
    from chalicelib.uploads import CHUNK_CONTENT_TYPES
    from uploader.upload import CONTENT_TYPES
    assert set(CONTENT_TYPES.values()) | {"application/octet-stream"} <= set(CHUNK_CONTENT_TYPES)
