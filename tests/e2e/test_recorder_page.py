"""A person's path through the pages the API serves, in Debian's headless Chromium with a
fake camera and microphone: open the recorder at the API's root, click Start recording,
wait 4 s, click Stop; the page shows the compiled video, which has a finite duration and
seeks; its share link opens the share page in another browser (no cookies, no storage in
common), where the video plays. A second run cuts the browser's network for a few seconds
mid-recording (DevTools network emulation): the page retries and the video has no hole.

Screenshots of both pages go to $ARTIFACTS_DIR (default tests/artifacts/)."""
import contextlib
import http.server
import json
import os
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.e2e.chromium import HTTP_TIMEOUT, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or ROOT / "tests" / "artifacts")
RECORD_SECONDS = 4
DURATION_TOLERANCE_SECONDS = 1.0
SEEK_TO = 2.0
PAGE_DONE_TIMEOUT = 180


def _button(driver, label: str):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']")


def _wait(driver, condition, timeout: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        result = driver.execute_script("return window.recorderResult")
        pytest.fail(f"{what} within {timeout} s; page: {json.dumps(result, default=str)[:3000]}")


def _result(driver) -> dict:
    return driver.execute_script("return window.recorderResult")


def _record_on_the_page(driver, url: str, during=None, source: str = "camera") -> dict:
    """Opens the recorder, chooses the source, records RECORD_SECONDS with the buttons (`during`
    runs while recording), and waits for the page to finish; returns window.recorderResult."""
    from selenium.webdriver.common.by import By
    driver.get(url)
    driver.find_element(By.ID, f"source-{source}").click()
    _button(driver, "Start recording").click()
    _wait(driver, lambda d: _result(d)["state"] in ("recording", "error"), 30, "no recording started")
    started = time.monotonic()
    if during:
        during()
    time.sleep(max(0.0, RECORD_SECONDS - (time.monotonic() - started)))
    _button(driver, "Stop").click()
    _wait(driver, lambda d: d.title.startswith(("done:", "error:")), PAGE_DONE_TIMEOUT,
          "the page did not finish")
    result = _result(driver)
    assert result["state"] == "done", (
        f"the page ended with {driver.title!r}; shown: "
        f"{driver.find_element(By.ID, 'error').text!r}\n{driver.find_element(By.ID, 'log').get_attribute('textContent')}")
    return result


def _seek(driver, element_id: str, seconds: float) -> dict:
    """Seeks the <video> and reports the seeked event and currentTime after it."""
    return driver.execute_async_script("""
        const [id, to, done] = arguments;
        const video = document.getElementById(id);
        const timer = setTimeout(() => done({seeked: false, currentTime: video.currentTime}), 15000);
        video.addEventListener("seeked", () => {
            clearTimeout(timer);
            done({seeked: true, currentTime: video.currentTime, duration: video.duration});
        }, {once: true});
        video.currentTime = to;
    """, element_id, seconds)


def _plays(driver, element_id: str) -> dict:
    """Starts the <video> and reports once it has data and its time has moved."""
    return driver.execute_async_script("""
        const [id, done] = arguments;
        const video = document.getElementById(id);
        video.muted = true;
        const started = video.currentTime;
        const timer = setInterval(() => {
            if (video.error) { clearInterval(timer); done({error: video.error.message}); }
            if (video.readyState >= 2 && video.currentTime > started + 0.5) {
                clearInterval(timer);
                done({readyState: video.readyState, currentTime: video.currentTime,
                      duration: video.duration});
            }
        }, 100);
        video.play().catch((error) => { clearInterval(timer); done({error: String(error)}); });
    """, element_id)


def _check_video_on_the_recorder_page(driver, result: dict) -> None:
    # The reference is how long the recorder ran (MediaRecorder start to stop, as the page
    # saw it): at least the RECORD_SECONDS the test waited between the clicks, more by the
    # clicks' own latency (and, with the network dropping, the steps in between).
    recorded = result["measuredSeconds"]
    duration = result["playback"]["duration"]
    context = f"the page's <video>: {result['playback']}; recorded {recorded:.3f} s"
    assert recorded >= RECORD_SECONDS - 0.1, context
    assert duration is not None and duration != float("inf"), context
    assert abs(duration - recorded) <= DURATION_TOLERANCE_SECONDS, context
    assert abs(result["status"]["duration"] - recorded) <= DURATION_TOLERANCE_SECONDS, context
    seek = _seek(driver, "result", SEEK_TO)
    assert seek["seeked"] and abs(seek["currentTime"] - SEEK_TO) < 0.25, seek
    _wait(driver, lambda d: d.execute_script(
        "const v = document.getElementById('result'); return !v.seeking && v.readyState >= 2"),
        15, "the recorder page's video did not show the frame it seeked to")
    # Every byte the page sent was committed, and the video holds them all.
    assert result["committedBytes"] == result["sentBytes"] == result["chunkBytes"] > 0, result
    assert result["status"]["committed_bytes"] == result["chunkBytes"]


def _no_csp_violations(driver) -> None:
    """The pages' Content-Security-Policy must not block anything they do themselves."""
    refused = [entry["message"] for entry in driver.get_log("browser")
               if "Content Security Policy" in entry["message"]]
    assert not refused, refused


def _screenshot(driver, name: str) -> Path:
    # Let a <video> that is still fetching settle first, so that the picture is not
    # covered by the player's loading spinner (for the eye only: no verdict here).
    with contextlib.suppress(Exception):
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(driver, 5, poll_frequency=0.2).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('video')].every("
            "(v) => v.hidden || !v.src || v.readyState >= 3 || v.networkState !== 2)"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def test_record_with_the_buttons_then_watch_through_the_share_link(live_server, tmp_path):
    from selenium.webdriver.common.by import By
    with chromium(tmp_path / "recorder") as driver:
        result = _record_on_the_page(driver, f"{live_server.url}/")
        _check_video_on_the_recorder_page(driver, result)
        assert result["retries"] == 0, result["uploads"]
        share = driver.find_element(By.ID, "share").get_attribute("href")
        assert share == f"{live_server.url}/watch/{result['videoId']}?token={result['playbackToken']}"
        assert result["token"] not in share
        # Chromium records VP8/Opus: the status lists the MP4 rendition, offered first
        assert [r["format"] for r in result["status"]["renditions"]] == ["mp4"]
        assert "format=mp4" in result["mp4Url"]
        _screenshot(driver, "recorder.png")
        _no_csp_violations(driver)

    answer = requests.get(share, timeout=HTTP_TIMEOUT)
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert result["token"] not in answer.text
    with chromium(tmp_path / "viewer") as viewer:  # another browser: no cookies, no storage
        viewer.get(share)
        assert viewer.execute_script("return document.cookie") == ""
        played = _plays(viewer, "video")
        assert "error" not in played and played["readyState"] >= 2, played
        assert abs(played["duration"] - result["playback"]["duration"]) < 0.1, played
        viewer.execute_script("const v = document.getElementById('video'); v.pause(); v.currentTime = 2;")
        _wait(viewer, lambda d: d.execute_script(
            "const v = document.getElementById('video'); return !v.seeking && v.readyState >= 2"),
            15, "the share page's video did not show a frame")
        _screenshot(viewer, "share.png")
        _no_csp_violations(viewer)
        # The upload token in a share URL is refused, in words, and not echoed.
        viewer.get(share.replace(result["playbackToken"], result["token"]))
        alert = viewer.find_element(By.CSS_SELECTOR, "[role=alert]").text
        assert alert.startswith("The token in this link is not the video's playback token"), alert
        assert "upload_token does not go in a URL" in viewer.find_element(By.TAG_NAME, "main").text
        assert result["token"] not in viewer.page_source
        _screenshot(viewer, "share-upload-token-refused.png")


def test_recording_survives_the_network_dropping_for_a_few_seconds(live_server, tmp_path):
    """The browser goes offline for 3 s mid-recording (DevTools network emulation, nothing
    in the page changed): chunks fail, the page retries with back-off and shows it, and the
    compiled video has every byte and the whole length."""
    from selenium.webdriver.common.by import By
    with chromium(tmp_path / "offline") as driver:
        def drop_the_network():
            time.sleep(1)
            driver.set_network_conditions(offline=True, latency=0, download_throughput=-1,
                                          upload_throughput=-1)
            _wait(driver, lambda d: _result(d)["retries"] >= 1, 10, "no retry while offline")
            _wait(driver, lambda d: "retrying" in d.find_element(By.ID, "state").text, 10,
                  "the page does not say it is retrying")
            _screenshot(driver, "recorder-while-offline.png")
            time.sleep(2)
            driver.set_network_conditions(offline=False, latency=0, download_throughput=-1,
                                          upload_throughput=-1)
        result = _record_on_the_page(driver, f"{live_server.url}/", during=drop_the_network)
        _check_video_on_the_recorder_page(driver, result)
        assert result["retries"] >= 1
        assert int(driver.find_element(By.ID, "retries").text) == result["retries"]
        _screenshot(driver, "recorder-after-network-drop.png")


def _offline(driver, offline: bool) -> None:
    driver.set_network_conditions(offline=offline, latency=0, download_throughput=-1,
                                  upload_throughput=-1)


def test_an_unreachable_api_is_said_on_the_page(live_server, tmp_path):
    from selenium.webdriver.common.by import By
    with chromium(tmp_path / "unreachable") as driver:
        driver.get(f"{live_server.url}/")
        driver.find_element(By.ID, "source-camera").click()
        _offline(driver, True)
        _button(driver, "Start recording").click()
        _wait(driver, lambda d: d.title.startswith(("done:", "error:")), 60, "no verdict")
        alert = driver.find_element(By.CSS_SELECTOR, "[role=alert]").text
        assert alert.startswith(f"The API at {live_server.url}/ cannot be reached"), alert
        assert _button(driver, "Start recording").is_enabled()
        _screenshot(driver, "recorder-api-unreachable.png")


def test_a_refused_permission_is_said_on_the_page(live_server, tmp_path):
    from selenium.webdriver.common.by import By
    with chromium(tmp_path / "refused", refuse_permissions=True) as driver:
        driver.get(f"{live_server.url}/")
        driver.find_element(By.ID, "source-camera").click()
        _button(driver, "Start recording").click()
        _wait(driver, lambda d: d.title.startswith(("done:", "error:")), 30, "no verdict")
        alert = driver.find_element(By.CSS_SELECTOR, "[role=alert]").text
        assert alert.startswith("Permission to use the camera and microphone was refused"), alert
        _screenshot(driver, "recorder-permission-refused.png")


def test_record_the_screen(live_server, tmp_path):
    """getDisplayMedia, the page's default source (the fake UI picks the screen)."""
    with chromium(tmp_path / "screen") as driver:
        result = _record_on_the_page(driver, f"{live_server.url}/", source="screen")
        _check_video_on_the_recorder_page(driver, result)
        assert result["status"]["video_codec"], result["status"]


STAGE = "/api"


class _StagePath(http.server.BaseHTTPRequestHandler):
    """In front of the API as API Gateway's execute-api domain is: everything under /api/,
    passed on without it; nothing outside it."""
    upstream = ""
    _SKIP = {"host", "connection", "content-length", "transfer-encoding", "content-encoding",
             "keep-alive"}

    def _forward(self):
        if not (self.path == STAGE or self.path.startswith((STAGE + "/", STAGE + "?"))):
            self.send_error(404, "outside the stage")
            return
        path = self.path[len(STAGE):]
        path = path if path.startswith("/") else "/" + path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self._SKIP}
        answer = requests.request(self.command, self.upstream + path, data=body, headers=headers,
                                  allow_redirects=False, timeout=HTTP_TIMEOUT)
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in self._SKIP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_OPTIONS = _forward

    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def stage_path_in_front_of(api: str):
    handler = type("Handler", (_StagePath,), {"upstream": api})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("opened", [STAGE, STAGE + "/"])
def test_the_page_finds_the_api_under_a_stage_path(live_server, tmp_path, opened):
    """On AWS the page is https://<id>.execute-api.<region>.amazonaws.com/api/ (or .../api):
    it must call the API there, not at the host's root (which answers 404 here)."""
    with stage_path_in_front_of(live_server.url) as origin, chromium(tmp_path / "stage") as driver:
        result = _record_on_the_page(driver, origin + opened)
        _check_video_on_the_recorder_page(driver, result)
        assert result["shareUrl"] == (f"{origin}{STAGE}/watch/{result['videoId']}"
                                      f"?token={result['playbackToken']}")
        assert result["videoUrl"].startswith(f"{origin}{STAGE}/get_video/")
