"""Download a joined video: ask GET /get_video (waiting while it answers 202), then read the
presigned URL it redirects to into a file, which appears whole or not at all."""
import os
import time
from pathlib import Path
from typing import Callable

import requests

from uploader.client import Api
from uploader.errors import ApiRefused, ApiUnavailable, JoinFailed, WaitTimedOut
from uploader.progress import Reporter
from uploader.retry import describe, retry_after_seconds

BLOCK = 1024 * 1024


def download(api: Api, video_id: int, token: str, output: Path, reporter: Reporter,
             wait: bool = True, wait_timeout: float = 600.0,
             sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> dict:
    location = _video_location(api, video_id, token, reporter, wait, wait_timeout, sleep, clock)
    partial = output.with_name(f".{output.name}.part")
    written = 0
    response = api.fetch(location)
    try:
        total = response.headers.get("Content-Length")
        bar = reporter.bar(int(total) if total and total.isdigit() else None, 0, f"video {video_id}")
        try:
            with open(partial, "wb") as out:
                try:
                    for block in response.iter_content(BLOCK):
                        out.write(block)
                        written += len(block)
                        bar.update(len(block))
                except requests.RequestException as error:
                    raise ApiUnavailable(f"the download of video {video_id} broke off after "
                                         f"{written} bytes: {describe(error)}") from None
        finally:
            bar.close()
        os.replace(partial, output)
    finally:
        response.close()
        partial.unlink(missing_ok=True)
    return {"video_id": video_id, "path": str(output), "bytes": written,
            "content_type": response.headers.get("Content-Type")}


def _video_location(api: Api, video_id: int, token: str, reporter: Reporter, wait: bool,
                    wait_timeout: float, sleep, clock) -> str:
    deadline = clock() + wait_timeout
    noted = False
    while True:
        try:
            response = api.playback(video_id, token)
        except ApiRefused as refused:
            if refused.code == "NotPlayable":
                raise JoinFailed(f"video {video_id} failed to join: {refused}") from None
            raise
        if response.status_code == 302:
            return response.headers["Location"]
        if not wait or clock() >= deadline:
            raise WaitTimedOut(f"video {video_id} is still being joined"
                               + (f" after {wait_timeout:g} s" if wait else ""))
        if not noted:
            reporter.note(f"video {video_id} is being joined; waiting for it")
            noted = True
        delay = retry_after_seconds(response.headers.get("Retry-After"))
        delay = 1.0 if delay is None else delay
        sleep(min(delay, max(0.0, deadline - clock())))
