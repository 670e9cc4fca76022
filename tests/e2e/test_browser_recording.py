"""A real browser records with MediaRecorder and streams the chunks to the API.

chalicelib/web/recorder.html (the page the API serves at /) is served from its own local HTTP server (another origin than the API, so
CORS preflights and headers are really exercised) and opened in Debian's headless Chromium
with fake camera and microphone. For each mimeType Chromium's MediaRecorder supports, the
page records about 3 s with a 500 ms timeslice, uploads every Blob in order while recording,
and waits until get_video stops answering 202. The test then downloads the compiled video
and checks its duration, that it is seekable, that it decodes without errors, and what the
status endpoint says.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver) and
the `selenium` package. Selenium is pointed at that chromedriver explicitly and runs offline:
it never downloads a driver or a browser. When a case fails, the recorded chunks are kept
under /tmp/browser-chunks/<mimeType>/ (with the page's result) to reproduce it with curl.
"""
import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from chalicelib.media import containers
from tests.conftest import ROOT, free_port
from tests.e2e.chromium import HTTP_TIMEOUT, chromium
from tests.inspect_media import matroska_has_cues, mp4_top_level_boxes

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WEB_ROOT = ROOT / "chalicelib" / "web"
FFMPEG = os.environ.get("FFMPEG_BINARY", str(ROOT / "layers" / "ffmpeg" / "bin" / "ffmpeg"))
KEPT_CHUNKS = Path("/tmp/browser-chunks")

RECORD_SECONDS = 3
TIMESLICE_MS = 500
DURATION_TOLERANCE = 0.10
# Bounds for every wait (recording, uploads, the join, the page's own 15 s playback check).
PAGE_DONE_TIMEOUT = 150
FFMPEG_TIMEOUT = 120

MIME_TYPES = [
    "video/webm;codecs=vp8,opus",
    "video/webm;codecs=vp9,opus",
    "video/webm;codecs=av1,opus",
    "audio/webm;codecs=opus",
    "video/x-matroska;codecs=avc1",
    "video/webm;codecs=h264",
    "video/mp4",
    "video/mp4;codecs=avc1,mp4a.40.2",
    "video/mp4;codecs=avc1,opus",
    "video/mp4;codecs=av01,opus",
    "audio/mp4;codecs=opus",
]



class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def web_origin():
    """chalicelib/web/ served on another loopback port than the API: a different origin."""
    handler = functools.partial(_QuietHandler, directory=str(WEB_ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, name="web-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the whole module."""
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


@pytest.fixture(scope="module")
def supported_types(browser, web_origin):
    """The listed mimeTypes this Chromium's MediaRecorder.isTypeSupported accepts."""
    browser.get(f"{web_origin}/recorder.html")
    accepted = browser.execute_script("return window.supportedTypes")
    return [mime_type for mime_type in MIME_TYPES if mime_type in (accepted or [])]


def test_browser_supports_some_listed_type(browser, supported_types):
    version = browser.capabilities.get("browserVersion")
    assert supported_types, (f"Chromium {version}: MediaRecorder supports none of {MIME_TYPES}; "
                             "the browser set-up is broken")


@pytest.mark.parametrize("mime_type", MIME_TYPES)
def test_recording_streamed_from_browser(browser, web_origin, live_server, supported_types,
                                         mime_type, tmp_path):
    if not supported_types:
        pytest.fail("MediaRecorder supports none of the listed types: the browser set-up is broken")
    if mime_type not in supported_types:
        version = browser.capabilities.get("browserVersion")
        pytest.skip(f"MediaRecorder.isTypeSupported({mime_type!r}) is false in Chromium {version}")

    result, chunks = _record(browser, web_origin, live_server.url, mime_type)
    try:
        _check_recording(result, chunks, live_server.url, mime_type, tmp_path)
    except BaseException:
        _keep_chunks(mime_type, chunks, result)
        raise


def test_multipart_uploads_from_browser(browser, web_origin, live_server, supported_types,
                                        tmp_path):
    """The page's FormData mode (one file field per request) joins like raw bodies."""
    if not supported_types:
        pytest.fail("MediaRecorder supports none of the listed types: the browser set-up is broken")
    mime_type = supported_types[0]
    result, chunks = _record(browser, web_origin, live_server.url, mime_type, upload="form")
    try:
        _check_recording(result, chunks, live_server.url, mime_type, tmp_path)
    except BaseException:
        _keep_chunks(mime_type + " multipart", chunks, result)
        raise


def test_page_reports_an_unreachable_api(browser, web_origin, supported_types):
    if not supported_types:
        pytest.fail("MediaRecorder supports none of the listed types: the browser set-up is broken")
    dead_api = f"http://127.0.0.1:{free_port()}"
    result, chunks = _record(browser, web_origin, dead_api, supported_types[0])
    assert result["state"] == "error" and result["title"].startswith("error:"), result["title"]
    assert "fetch" in result["error"].lower(), result["error"]  # Chromium: "Failed to fetch"


def _record(browser, web_origin, api, mime_type, **extra):
    """Runs the page to completion; returns window.recorderResult and the recorded chunks."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    query = urlencode({"api": api, "mimeType": mime_type, "timeslice": TIMESLICE_MS,
                       "seconds": RECORD_SECONDS, "source": "camera", "autostart": 1,
                       "keepChunks": 1, **extra})
    browser.get(f"{web_origin}/recorder.html?{query}")
    try:
        WebDriverWait(browser, PAGE_DONE_TIMEOUT, poll_frequency=0.25).until(
            lambda driver: driver.title.startswith(("done:", "error:")))
    except TimeoutException:
        result = browser.execute_script("return window.recorderResult")
        pytest.fail(f"the page did not finish within {PAGE_DONE_TIMEOUT} s: "
                    f"{json.dumps(result)[:3000]}\n{_page_log(browser)}")
    result = browser.execute_script("return window.recorderResult")
    result["title"] = browser.title
    result["log"] = _page_log(browser)
    encoded = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all(window.recordedBlobs.map((blob) => new Promise((resolve, reject) => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(";base64,") + 8));
            reader.onerror = () => reject(reader.error);
            reader.readAsDataURL(blob);
        }))).then(done, (error) => done({error: String(error)}));
    """)
    assert isinstance(encoded, list), f"could not read the recorded Blobs: {encoded}"
    return result, [base64.b64decode(chunk) for chunk in encoded]


def _page_log(browser) -> str:
    return browser.execute_script("return document.getElementById('log').textContent")


def _check_recording(result, chunks, api, mime_type, tmp_path):
    assert result["state"] == "done", (
        f"{mime_type}: the page ended with {result['title']!r}\n"
        f"uploads: {json.dumps(result.get('uploads'))[:3000]}\npage log:\n{result['log']}")
    video_id, token = result["videoId"], result["token"]
    assert result["title"] == f"done:{video_id}"  # the upload token stays out of the title
    assert result["committedBytes"] == result["sentBytes"] == result["chunkBytes"]
    assert len(chunks) == len(result["chunks"]) >= 2, "expected several timeslice chunks"
    assert [len(chunk) for chunk in chunks] == result["chunks"]

    # What the browser produced decides which container the API must compile to. Sniff the
    # byte join: Chromium's first Blob is sometimes a single byte (0x1A), the rest of the
    # EBML header arriving in the second.
    raw = tmp_path / "raw-join"
    raw.write_bytes(b"".join(chunks))
    produced = containers.sniff(raw.read_bytes()[:containers.SNIFF_BYTES])
    assert produced is not None, f"{mime_type}: the recording does not start with a header"
    family = "mp4" if "/mp4" in mime_type else "matroska"
    assert (produced.name == "mp4") == (family == "mp4"), (mime_type, produced)

    # The reference length is the media timeline of what MediaRecorder produced: first to
    # last timestamp (plus its duration) over all streams of the Blobs joined byte for byte,
    # read by ffmpeg's demuxer without decoding or muxing. That is exactly what the API was
    # given, so a join that loses chunks (the concat demuxer keeping the first 0.5 s), drops
    # a stream or mis-times the remux falls outside 10 %, while browser-side effects do not
    # make the test flaky. The page's own clock (MediaRecorder `start` to `stop` events) is
    # not that reference: on a busy machine the events reach JavaScript hundreds of ms late
    # and the fake camera stalls, so the media and the wall clock differed by up to 0.7 s of
    # 3 s in practice. It only bounds the recording loosely, to catch a broken capture.
    reference = _media_span_seconds(raw)
    measured = result["measuredSeconds"]
    assert reference is not None, f"{mime_type}: ffmpeg finds no packets in the recording"
    assert 0.5 * measured <= reference <= 2 * measured, (
        f"{mime_type}: the browser recorded {reference} s of media in {measured:.3f} s")

    # get_video: a 302 to the compiled video, which downloads.
    playback_url = f"{api}/get_video/{video_id}/?token={result['playbackToken']}"
    answer = requests.get(playback_url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 302, (answer.status_code, answer.text[:2000])
    download = requests.get(answer.headers["Location"], timeout=HTTP_TIMEOUT)
    assert download.status_code == 200, (download.status_code, download.text[:500])
    compiled = tmp_path / f"compiled.{produced.extension}"
    compiled.write_bytes(download.content)

    status = requests.get(f"{api}/videos/{video_id}", timeout=HTTP_TIMEOUT,
                          headers={"Authorization": f"Bearer {token}"}).json()
    context = (f"{mime_type}: status {json.dumps(status)}; the recorded chunks span "
               f"{reference:.3f} s of media; the page measured {measured:.3f} s")
    print(context)
    assert status["status"] == "ready", context
    assert status["chunk_count"] == status.get("compiled_chunk_count") == len(chunks), context
    assert status["container"] == produced.name, context
    # Served as the container's media type: video/... or, for a recording without video,
    # audio/... or video/... (both are right for WebM/MP4 audio).
    served = download.headers.get("Content-Type", "").split(";")[0]
    subtype = produced.content_type.split("/")[1]
    majors = ("video",) if mime_type.startswith("video/") else ("audio", "video")
    assert served in {f"{major}/{subtype}" for major in majors}, (served, context)
    assert status.get("content_type", served) == served, context

    # Duration: what the API reports and what the file's header says.
    header_duration = _header_seconds(compiled)
    for name, seconds in (("status duration", status.get("duration")),
                          ("file Duration", header_duration)):
        assert seconds is not None, f"{name} missing; {context}"
        assert abs(seconds - reference) <= DURATION_TOLERANCE * reference, (
            f"{name} {seconds} s is not within 10% of {reference:.3f} s; {context}")

    # Seekable: an index up front (MP4) or a Cues element (WebM/Matroska).
    with open(compiled, "rb") as stream:
        if produced.name == "mp4":
            boxes = mp4_top_level_boxes(stream)
            assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index(
                "mdat"), f"MP4 boxes {boxes}: moov must come before mdat; {context}"
        else:
            assert matroska_has_cues(stream), f"no Cues in the {produced.name}; {context}"

    # The page's <video> (src = get_video, following the 302 to S3) played it in Chromium.
    playback = result.get("playback") or {}
    assert "error" not in playback and playback.get("duration"), f"page playback {playback}"
    assert abs(playback["duration"] - reference) <= DURATION_TOLERANCE * reference, (
        f"the page's <video> sees {playback['duration']} s; {context}")

    # Decodes cleanly: `ffmpeg -v error -i file -f null -` exits 0 and prints nothing. One
    # message is tolerated, and only when decoding the browser's own bytes prints exactly
    # the same: the null muxer's "non monotonically increasing dts", which Chromium causes
    # when a stalled fake camera makes it write two frames with one timestamp (seen: two
    # VP8 frames at 517 ms). The frames decode; the API copied them faithfully.
    returncode, complaints = _decode_errors(compiled)
    assert returncode == 0, f"ffmpeg decode exit {returncode}: {complaints}; {context}"
    if complaints:
        inherited = _decode_errors(raw)[1]
        assert all(_MUXER_DTS.search(line) for line in complaints) and complaints == inherited, (
            f"decoding the compiled video prints {complaints} (the recorded bytes: "
            f"{inherited}); {context}")

    # The streams the browser recorded are all there.
    expects_video = mime_type.startswith("video/")
    assert bool(status.get("video_codec")) == expects_video, context
    if expects_video:
        assert status.get("width") and status.get("height"), context
    if "opus" in mime_type or "mp4a" in mime_type or mime_type.startswith("audio/"):
        assert status.get("audio_codec"), context


def _ffmpeg_info(path: Path) -> str:
    probe = subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-i", str(path)],
                           capture_output=True, text=True, timeout=FFMPEG_TIMEOUT)
    return probe.stderr


def _header_seconds(path: Path) -> float | None:
    match = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", _ffmpeg_info(path))
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


_MUXER_DTS = re.compile(r"^\[null @ 0x[0-9a-f]+\] Application provided invalid, non monotonically "
                        r"increasing dts to muxer in stream \d+: \d+ >= \d+$")


def _decode_errors(path: Path) -> tuple[int, list[str]]:
    """`ffmpeg -v error -i path -f null -`: its exit code and stderr lines (addresses masked)."""
    run = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=FFMPEG_TIMEOUT)
    return run.returncode, [re.sub(r" @ 0x[0-9a-f]+\]", " @ 0x0]", line)
                            for line in run.stderr.splitlines()]


def _media_span_seconds(path: Path) -> float | None:
    """Seconds from the first packet's timestamp to the end of the last, over all streams,
    as ffmpeg's demuxer reads them (a stream copy to framecrc: no decoding, no muxer)."""
    run = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0",
                          "-c", "copy", "-f", "framecrc", "-"],
                         capture_output=True, text=True, timeout=FFMPEG_TIMEOUT)
    time_bases = {int(index): int(num) / int(den) for index, num, den in
                  re.findall(r"^#tb (\d+): (\d+)/(\d+)$", run.stdout, re.MULTILINE)}
    starts, ends = [], []
    for line in run.stdout.splitlines():
        if line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        index, _dts, pts, duration = (int(field) for field in fields[:4])
        starts.append(pts * time_bases[index])
        ends.append((pts + duration) * time_bases[index])
    return round(max(ends) - min(starts), 3) if starts else None


def _keep_chunks(mime_type: str, chunks: list[bytes], result: dict) -> None:
    """Saves what the browser recorded, to reproduce a failure against the API by hand."""
    folder = KEPT_CHUNKS / re.sub(r"[^A-Za-z0-9.,=+-]+", "_", mime_type)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index, chunk in enumerate(chunks):
        (folder / f"{index:04d}.chunk").write_bytes(chunk)
    (folder / "result.json").write_text(json.dumps(
        {"mimeType": mime_type, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         **result}, indent=2, default=str))
