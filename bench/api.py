"""A small client of the API over HTTP (requests), with every wait bounded."""
import time

import requests

TIMEOUT = 60  # seconds for any one request


class Api:
    def __init__(self, url: str):
        assert url.startswith("http://127.0.0.1:"), "the benchmark only talks to loopback"
        self.url = url
        self.session = requests.Session()

    def create(self) -> tuple[int, str]:
        r = self.session.post(f"{self.url}/create_video/", timeout=TIMEOUT)
        r.raise_for_status()
        body = r.json()
        return body["video_id"], body["upload_token"]

    def append(self, video_id: int, token: str, chunk: bytes) -> float:
        """One append; returns its latency in seconds."""
        started = time.perf_counter()
        r = self.session.post(f"{self.url}/append_video/{video_id}/", data=chunk,
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Type": "video/webm"}, timeout=TIMEOUT)
        elapsed = time.perf_counter() - started
        if r.status_code != 200:
            raise RuntimeError(f"append to {video_id} answered {r.status_code}: {r.text[:300]}")
        return elapsed

    def get(self, video_id: int, token: str) -> requests.Response:
        return self.session.get(f"{self.url}/get_video/{video_id}/",
                                headers={"Authorization": f"Bearer {token}"},
                                allow_redirects=False, timeout=TIMEOUT)

    def status(self, video_id: int, token: str) -> dict:
        r = self.session.get(f"{self.url}/videos/{video_id}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
        r.raise_for_status()
        return r.json()

    def wait_ready(self, video_id: int, token: str, timeout: float,
                   interval: float = 0.1) -> tuple[float | None, int, requests.Response]:
        """Poll GET until it answers 302: (seconds waited or None on timeout, polls, last)."""
        started = time.perf_counter()
        polls = 0
        while True:
            r = self.get(video_id, token)
            polls += 1
            if r.status_code == 302:
                return time.perf_counter() - started, polls, r
            if r.status_code != 202:
                raise RuntimeError(f"GET {video_id} answered {r.status_code}: {r.text[:300]}")
            if time.perf_counter() - started > timeout:
                return None, polls, r
            time.sleep(interval)

    def close(self) -> None:
        self.session.close()
