"""A compiled video is seekable cheaply in a real browser: few HTTP Range requests.

A ten-minute recording (160x120, noisy so that it weighs tens of MiB) is streamed to the
running stack (`live_server`) in chunks of about 300 KB cut at arbitrary byte offsets,
the last append finalizing it (Content-Range with the total). Once the video is ready,
GET /get_video answers 302 to a presigned S3 URL on the emulator; a small counting HTTP
proxy (`CountingProxy`) stands between headless Chromium and that URL: it serves the page
with the <video> at / and the video at /video (same origin), forwarding each request's
Range header to the presigned URL and streaming the answer back, and it records method,
path, Range and status of every request. The page marks where each phase ends by fetching
/mark?<name> from the proxy, so the counts are split where the events fired.

In a fresh Chromium profile (nothing cached), with preload=metadata:
- at `loadedmetadata` the <video> reports a finite duration, the recording's within 2 % or
  0.2 s, after at most MAX_REQUESTS_TO_METADATA requests and with at most half the file
  sent to the browser by then (it reads ahead, but a file it must read through to know
  its duration is read to the end);
- a seek to the middle, then to 2 s before the end, each fire `seeked` at the target
  (within a keyframe interval, 1 s here) with at most MAX_REQUESTS_PER_SEEK requests
  between the seek and `seeked`.
The counts are printed (run with -s to see them); a violated bound prints the request log.

Cases: WebM VP8/Opus, which must be composed from segments (join_method "segments"); a
fragmented MP4 H.264/AAC with one fragment per second (Safari's MediaRecorder shape), which
must be too; and, to show the measure can tell, that fragmented MP4 served as recorded (the
chunks' bytes put straight into the emulator's bucket): Chromium's demuxer walks every
fragment of the unindexed file before it reports the duration, reading all of it.
"""
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from chalicelib.settings import get_settings
from tests import media_factory
from tests.e2e.chromium import chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

RECORD_SECONDS = 600
FRAME_SIZE = "160x120"
VIDEO_BITRATE = "300k"  # with the noise: about 27 MiB for ten minutes, several times 5 MiB
KEYFRAME_SECONDS = 1.0  # media_factory encodes a keyframe every `rate` frames
CHUNK_BYTES = (200_000, 400_000)  # each chunk's size is drawn from this range
HTTP_TIMEOUT = 30
JOIN_TIMEOUT = 600  # two shared cores, and a join verifies what it wrote
EVENT_TIMEOUT = 120  # loadedmetadata or seeked, in the browser
QUIET_SECONDS = 1.5  # no new request for this long: the browser has settled
SETTLE_TIMEOUT = 20

MAX_REQUESTS_TO_METADATA = 3
MAX_REQUESTS_PER_SEEK = 6
# Video bytes sent to the browser by loadedmetadata, as a fraction of the file. Chromium reads
# ahead (about 8 MiB was seen at loadedmetadata for a plain MP4 with its moov first), but a
# file it has to read through before it knows the duration goes past the end.
MAX_FRACTION_TO_METADATA = 0.5
DURATION_TOLERANCE = 0.02
DURATION_SLACK_SECONDS = 0.2


# -- the counting proxy ---------------------------------------------------------------------

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>seeking</title></head>
<body><video id="v" preload="metadata" muted playsinline></video></body></html>"""

_PASSED_ON = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag",
              "Last-Modified")


@dataclass
class Request:
    number: int
    method: str
    path: str
    range: str | None
    status: int | None = None
    content_range: str | None = None
    bytes_sent: int = 0  # what reached the browser before it was done with the answer
    started: float = 0.0

    def __str__(self) -> str:
        return (f"#{self.number} {self.method} {self.path} Range={self.range} -> {self.status} "
                f"{self.content_range or ''} sent {self.bytes_sent} bytes")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the browser drops connections it no longer needs: not worth a traceback


class CountingProxy:
    """Serves the page at /, the video at /video (forwarded to `upstream` with the request's
    Range, streamed back as it comes) and records every request to /video; /mark?<name>
    puts a named mark in the log (the page fetches it when an event fired)."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.log: list = []  # Request, or ("mark", name, bytes sent to the browser by then)
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._last_request = time.monotonic()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy._serve(self)

            do_HEAD = do_GET

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "CountingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests_between(self, start: str | None, end: str | None) -> list[Request]:
        """The video requests after the mark `start` (None: from the first) and before the
        mark `end` (None: to the last)."""
        with self._lock:
            log = list(self.log)
        names = [entry[1] if isinstance(entry, tuple) else None for entry in log]
        first = names.index(start) + 1 if start is not None else 0
        last = names.index(end) if end is not None else len(log)
        return [entry for entry in log[first:last] if isinstance(entry, Request)]

    def bytes_by(self, mark: str) -> int | None:
        """How many video bytes had been sent to the browser when the mark arrived."""
        with self._lock:
            return next((entry[2] for entry in self.log
                         if isinstance(entry, tuple) and entry[1] == mark), None)

    def wait_until_quiet(self) -> None:
        """Until no request has arrived for QUIET_SECONDS (or SETTLE_TIMEOUT passed). An
        answer the browser stopped reading stays open; only new requests count."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            with self._lock:
                idle = time.monotonic() - self._last_request
            if idle >= QUIET_SECONDS:
                return
            time.sleep(0.1)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path)
        if path.path == "/":
            self._answer(handler, 200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
        elif path.path == "/mark":
            with self._lock:
                self.log.append(("mark", path.query, self.bytes_sent))
            self._answer(handler, 204, b"", {"Cache-Control": "no-store"})
        elif path.path == "/video":
            self._forward(handler)
        else:
            self._answer(handler, 404, b"", {})

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            request = Request(sum(isinstance(e, Request) for e in self.log) + 1, handler.command,
                              handler.path, handler.headers.get("Range"), started=time.monotonic())
            self.log.append(request)
            self._last_request = request.started
        headers = {"Range": request.range} if request.range else {}
        try:
            upstream = requests.request(handler.command, self.upstream, headers=headers,
                                        stream=True, timeout=HTTP_TIMEOUT)
        except requests.RequestException as error:
            request.status = 502
            self._answer(handler, 502, str(error).encode(), {"Content-Type": "text/plain"})
            return
        with upstream:
            request.status = upstream.status_code
            request.content_range = upstream.headers.get("Content-Range")
            try:
                handler.send_response(upstream.status_code)
                for name in _PASSED_ON:
                    if name in upstream.headers:
                        handler.send_header(name, upstream.headers[name])
                # Counted requests must be network requests: nothing from the HTTP cache.
                handler.send_header("Cache-Control", "no-store")
                handler.end_headers()
                if handler.command == "HEAD":
                    return
                for block in upstream.raw.stream(64 * 1024, decode_content=False):
                    handler.wfile.write(block)
                    with self._lock:
                        request.bytes_sent += len(block)
                        self.bytes_sent += len(block)
            except OSError:
                handler.close_connection = True  # the browser had what it wanted

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            pass


# -- the browser's side ---------------------------------------------------------------------

_LOAD = """
const [timeoutMs, done] = arguments;
const video = document.getElementById('v');
let finished = false;
const finish = (result) => {
    if (finished) return;
    finished = true;
    fetch('/mark?loadedmetadata', {cache: 'no-store'}).finally(() => done(result));
};
const state = () => ({duration: String(video.duration), readyState: video.readyState,
                      networkState: video.networkState,
                      error: video.error && `${video.error.code} ${video.error.message}`});
video.addEventListener('loadedmetadata', () => finish({event: 'loadedmetadata', ...state()}));
video.addEventListener('error', () => finish({event: 'error', ...state()}));
setTimeout(() => finish({event: 'timeout', ...state()}), timeoutMs);
video.src = '/video';
"""

_SEEK = """
const [name, target, timeoutMs, done] = arguments;
const video = document.getElementById('v');
let finished = false;
const started = performance.now();
const state = () => ({currentTime: video.currentTime, duration: String(video.duration),
                      readyState: video.readyState, seeking: video.seeking,
                      milliseconds: Math.round(performance.now() - started),
                      error: video.error && `${video.error.code} ${video.error.message}`});
const finish = (result) => {
    if (finished) return;
    finished = true;
    fetch(`/mark?${name}-done`, {cache: 'no-store'}).finally(() => done(result));
};
fetch(`/mark?${name}-start`, {cache: 'no-store'}).then(() => {
    video.addEventListener('seeked', () => finish({event: 'seeked', ...state()}), {once: true});
    video.addEventListener('error', () => finish({event: 'error', ...state()}), {once: true});
    setTimeout(() => finish({event: 'timeout', ...state()}), timeoutMs);
    video.currentTime = target;
});
"""


@dataclass
class Seek:
    name: str
    target: float
    result: dict
    requests: list[Request]  # from the seek to `seeked`
    after: list[Request]  # from `seeked` until the browser settled


@dataclass
class Session:
    label: str
    loaded: dict
    to_metadata: list[Request]
    after_metadata: list[Request]
    seeks: list[Seek]
    log: list
    bytes_to_metadata: int | None  # video bytes sent to the browser by loadedmetadata

    def summary(self) -> str:
        parts = [f"loadedmetadata {len(self.to_metadata)} (+{len(self.after_metadata)} "
                 f"while it settled; {(self.bytes_to_metadata or 0) / 2**20:.1f} MiB by then)"]
        parts += [f"{seek.name} seek {len(seek.requests)} (+{len(seek.after)})" for seek in self.seeks]
        sent = sum(r.bytes_sent for r in self.log if isinstance(r, Request))
        return (f"{self.label}: Range requests: " + ", ".join(parts)
                + f"; {sent / 2**20:.1f} MiB sent to the browser")

    def file_size(self) -> int | None:
        """The video's length, from the Content-Range of a 206."""
        return next((int(r.content_range.rsplit("/", 1)[1]) for r in self.log
                     if isinstance(r, Request) and r.content_range), None)

    def request_log(self) -> str:
        return "\n".join(f"  -- {entry[1]} ({entry[2]} bytes sent by then)" if isinstance(entry, tuple) else f"  {entry}"
                         for entry in self.log)


def play_and_seek(label: str, video_url: str, seconds: float, work) -> Session:
    """Loads the video in a fresh Chromium through a CountingProxy, then seeks to the
    middle and to 2 s before the end; what happened, with the requests of each phase."""
    with CountingProxy(video_url) as proxy, chromium(work) as driver:
        driver.set_script_timeout(EVENT_TIMEOUT + 30)
        driver.get(proxy.url + "/")
        loaded = driver.execute_async_script(_LOAD, EVENT_TIMEOUT * 1000)
        proxy.wait_until_quiet()
        results = []
        if loaded.get("event") == "loadedmetadata":
            for name, target in (("middle", seconds / 2), ("end", seconds - 2.0)):
                result = driver.execute_async_script(_SEEK, name, target, EVENT_TIMEOUT * 1000)
                proxy.wait_until_quiet()
                results.append((name, target, result))
                if result.get("event") != "seeked":
                    break
        starts = [f"{name}-start" for name, _, _ in results] + [None]
        seeks = [Seek(name, target, result,
                      proxy.requests_between(f"{name}-start", f"{name}-done"),
                      proxy.requests_between(f"{name}-done", next_start))
                 for (name, target, result), next_start in zip(results, starts[1:])]
        session = Session(label, loaded, proxy.requests_between(None, "loadedmetadata"),
                          proxy.requests_between("loadedmetadata", starts[0]), seeks,
                          list(proxy.log), proxy.bytes_by("loadedmetadata"))
    print(session.summary())
    return session


def assert_seekable_cheaply(session: Session, seconds: float) -> None:
    context = f"{session.summary()}\nrequest log:\n{session.request_log()}"
    loaded = session.loaded
    try:
        assert loaded.get("event") == "loadedmetadata", f"no loadedmetadata: {loaded}"
        duration = float(loaded["duration"])  # "Infinity" and "NaN" parse, and fail below
        tolerance = max(DURATION_TOLERANCE * seconds, DURATION_SLACK_SECONDS)
        assert abs(duration - seconds) <= tolerance, (
            f"the <video> reports {loaded['duration']} s at loadedmetadata, not {seconds} s")
        size = session.file_size()
        assert size and session.bytes_to_metadata <= MAX_FRACTION_TO_METADATA * size, (
            f"{session.bytes_to_metadata} of {size} bytes read by loadedmetadata")
        assert len(session.to_metadata) <= MAX_REQUESTS_TO_METADATA, (
            f"{len(session.to_metadata)} requests before loadedmetadata "
            f"(at most {MAX_REQUESTS_TO_METADATA})")
        assert [seek.name for seek in session.seeks] == ["middle", "end"], "a seek did not end"
        for seek in session.seeks:
            assert seek.result.get("event") == "seeked", f"{seek.name}: {seek.result}"
            assert abs(seek.result["currentTime"] - seek.target) <= KEYFRAME_SECONDS, (
                f"{seek.name}: sought {seek.target} s, landed at {seek.result['currentTime']} s")
            assert len(seek.requests) <= MAX_REQUESTS_PER_SEEK, (
                f"{seek.name}: {len(seek.requests)} requests until seeked "
                f"(at most {MAX_REQUESTS_PER_SEEK})")
    except AssertionError as failure:
        print(context)
        raise AssertionError(f"{failure}\n{context}") from None


# -- recordings, and the stack's compiled videos -------------------------------------------

def webm_recording() -> bytes:
    return media_factory.unseekable_stream("webm", "vp8", "opus", seconds=RECORD_SECONDS,
                                           size=FRAME_SIZE, video_bitrate=VIDEO_BITRATE)


def fragmented_mp4_recording() -> bytes:
    """One fragment per second (a keyframe every second, a fragment at each keyframe)."""
    return media_factory.unseekable_stream("mp4", "h264", "aac", seconds=RECORD_SECONDS,
                                           size=FRAME_SIZE, video_bitrate=VIDEO_BITRATE)


def chunks_of(data: bytes, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    sizes, total = [], 0
    while total < len(data):
        sizes.append(rng.randint(*CHUNK_BYTES))
        total += sizes[-1]
    return media_factory.cut(data, sizes[:-1])


@dataclass
class Compiled:
    video_id: int
    url: str  # the presigned URL get_video redirects to
    status: dict


def compile_through_the_api(api: str, data: bytes, content_type: str) -> Compiled:
    created = requests.post(f"{api}/create_video/", timeout=HTTP_TIMEOUT)
    assert created.status_code == 201, created.text
    video_id = created.json()["video_id"]
    auth = {"Authorization": f"Bearer {created.json()['upload_token']}"}
    playback_token = created.json()["playback_token"]
    chunks, first = chunks_of(data), 0
    for index, chunk in enumerate(chunks):
        last = first + len(chunk) - 1
        total = len(data) if index == len(chunks) - 1 else "*"  # the last append finalizes
        answer = requests.post(f"{api}/append_video/{video_id}/", data=chunk, timeout=HTTP_TIMEOUT,
                               headers={**auth, "Content-Type": content_type,
                                        "Content-Range": f"bytes {first}-{last}/{total}"})
        assert answer.status_code == 200, (index, answer.status_code, answer.text)
        first = last + 1

    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        status = requests.get(f"{api}/videos/{video_id}", headers=auth, timeout=HTTP_TIMEOUT).json()
        if status.get("status") in ("ready", "failed") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status.get("status") == "ready", f"video {video_id} after {len(chunks)} chunks: {status}"
    assert status.get("finalized") and status["chunk_count"] == len(chunks), status
    playback = requests.get(f"{api}/get_video/{video_id}/?token={playback_token}",
                            allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert playback.status_code == 302, (playback.status_code, playback.text)
    print(f"video {video_id}: {len(data) / 2**20:.1f} MiB in {len(chunks)} chunks -> "
          f"{json.dumps({k: status.get(k) for k in ('join_method', 'container', 'duration', 'byte_size')})}")
    return Compiled(video_id, playback.headers["Location"], status)


@pytest.fixture(scope="module")
def compiled_webm(live_server) -> Compiled:
    return compile_through_the_api(live_server.url, webm_recording(), "video/webm")


@pytest.fixture(scope="module")
def compiled_mp4(live_server) -> Compiled:
    return compile_through_the_api(live_server.url, fragmented_mp4_recording(), "video/mp4")


def presigned_as_recorded(live_server, data: bytes, content_type: str) -> str:
    """The recording's bytes, as the chunks carried them, straight into the emulator's
    bucket under a test key; a presigned URL to them."""
    s3 = boto3.client("s3", endpoint_url=live_server.emulator_url)
    bucket, key = get_settings().bucket_name, f"tests/seeking/{uuid.uuid4().hex}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"".join(chunks_of(data)), ContentType=content_type)
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                     ExpiresIn=3600)


# -- the cases ------------------------------------------------------------------------------

def test_composed_webm_seeks_with_few_range_requests(compiled_webm, tmp_path):
    assert compiled_webm.status.get("join_method") == "segments", compiled_webm.status
    session = play_and_seek("WebM VP8/Opus, composed", compiled_webm.url, RECORD_SECONDS, tmp_path)
    assert_seekable_cheaply(session, RECORD_SECONDS)


def test_composed_fragmented_mp4_seeks_with_few_range_requests(compiled_mp4, tmp_path):
    session = play_and_seek("fragmented MP4 H.264/AAC, compiled", compiled_mp4.url,
                            RECORD_SECONDS, tmp_path)
    assert compiled_mp4.status.get("join_method") == "segments", compiled_mp4.status
    assert_seekable_cheaply(session, RECORD_SECONDS)


def test_fragmented_mp4_as_recorded_costs_more(live_server, compiled_mp4, tmp_path):
    """The measure can tell: the same stream served as recorded. What Chromium 156 does
    with it (measured): its demuxer walks every fragment before `loadedmetadata` (the whole
    file, in one or two long-running requests; the duration it then reports is finite and
    right, and seeks are cheap because everything is indexed). So the request count alone
    does not show the cost; the bytes read before the duration is known do."""
    recording = fragmented_mp4_recording()
    size = len(recording)
    raw = play_and_seek("fragmented MP4 as recorded", presigned_as_recorded(
        live_server, recording, "video/mp4"), RECORD_SECONDS, tmp_path / "raw")
    composed = play_and_seek("fragmented MP4, compiled", compiled_mp4.url, RECORD_SECONDS,
                             tmp_path / "compiled")
    context = (f"{raw.summary()}\n{composed.summary()}\nas recorded:\n{raw.request_log()}\n"
               f"compiled:\n{composed.request_log()}")
    assert raw.loaded.get("event") == composed.loaded.get("event") == "loadedmetadata", context
    assert raw.bytes_to_metadata >= size, (
        f"Chromium knew the duration of the unindexed stream after {raw.bytes_to_metadata} of "
        f"its {size} bytes: the comparison no longer shows what an index saves\n{context}")
    assert composed.bytes_to_metadata <= MAX_FRACTION_TO_METADATA * size < raw.bytes_to_metadata, context
