"""The API's routes as method calls (README, "API"), over one requests.Session, each
request retried by `uploader.retry`. Answers become dicts; refusals, outages and range
conflicts become the exceptions of `uploader.errors`."""
import base64
import hashlib
import random
from dataclasses import dataclass
from typing import IO, Callable

import requests

from uploader import __version__
from uploader.errors import ApiRefused, ApiUnavailable, RangeConflict
from uploader.retry import RetryPolicy, describe, send_with_retries

# (connect, read) seconds. An append is at most 4.5 MB; a piece commit moves the piece
# within S3 and a piece PUT carries up to 5 GiB, so those may take long.
TIMEOUT = (10, 120)
SLOW_TIMEOUT = (10, 900)


def content_digest(data: bytes) -> str:
    """The Content-Digest of a chunk (RFC 9530): the API refuses a body damaged on the way."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def content_range(first: int, size: int, total: int | None) -> str:
    return f"bytes {first}-{first + size - 1}/{'*' if total is None else total}"


@dataclass(frozen=True)
class Committed:
    """The API's answer to an append or a piece commit."""
    chunk_index: int
    offset: int  # where the recording ends now: the next chunk's first byte


class Api:
    def __init__(self, url: str, policy: RetryPolicy = RetryPolicy(),
                 on_retry: Callable[[str, float, int], None] = lambda why, delay, number: None,
                 rng: random.Random | None = None):
        self.url = url.rstrip("/")
        self.policy = policy
        self.on_retry = on_retry
        self.rng = rng or random.Random()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"video-uploader/{__version__}"

    # The routes, in the order an upload calls them.

    def create(self) -> dict:
        # The one call that is not idempotent: a retry after a lost answer makes a second
        # video, and the first, never given a chunk, expires on the API (EXPIRE_AFTER_SECONDS).
        return self._call("POST", "/create_video/", expect=(201,)).json()

    def status(self, video_id: int, token: str) -> dict:
        return self._call("GET", f"/videos/{video_id}", token=token).json()

    def append(self, video_id: int, token: str, chunk: bytes, first: int, total: int,
               content_type: str) -> Committed:
        response = self._call("POST", f"/append_video/{video_id}/", token=token, data=chunk, headers={
            "Content-Type": content_type, "Content-Range": content_range(first, len(chunk), total),
            "Content-Digest": content_digest(chunk)})
        return _committed(response)

    def start_piece(self, video_id: int, token: str) -> dict:
        return self._call("POST", f"/videos/{video_id}/pieces", token=token, expect=(201,)).json()

    def put_piece(self, upload_url: str, open_body: Callable[[], IO[bytes]]) -> None:
        """PUT a piece to its presigned S3 URL; open_body() gives the bytes afresh for each
        try. No token: the URL's signature is the permission (and must not see ours)."""
        self._call("PUT", upload_url, body=open_body, timeout=SLOW_TIMEOUT)

    def commit_piece(self, video_id: int, token: str, piece_id: str, first: int, size: int,
                     total: int) -> Committed:
        response = self._call("POST", f"/videos/{video_id}/pieces/{piece_id}/commit", token=token,
                              headers={"Content-Range": content_range(first, size, total)},
                              timeout=SLOW_TIMEOUT)
        return _committed(response)

    def finalize(self, video_id: int, token: str) -> dict:
        return self._call("POST", f"/videos/{video_id}/finalize", token=token).json()

    def playback(self, video_id: int, token: str) -> requests.Response:
        """GET /get_video: a 302 to the compiled video, or a 202 while it is being joined.
        The token goes in the header, which takes either token (a URL takes only the
        playback token, and keeps it in logs)."""
        return self._call("GET", f"/get_video/{video_id}/", token=token, expect=(202, 302),
                          allow_redirects=False)

    def fetch(self, url: str) -> requests.Response:
        """GET a presigned URL, streamed: the caller reads the body and closes it."""
        return self._call("GET", url, stream=True, timeout=SLOW_TIMEOUT)

    def playback_url(self, video_id: int, playback_token: str) -> str:
        """A link that plays the video in a browser (`<video src>`, shared links)."""
        return f"{self.url}/get_video/{video_id}/?token={playback_token}"

    # One request, retried.

    def _call(self, method: str, path: str, token: str | None = None, expect=(200,),
              body: Callable[[], IO[bytes]] | None = None, headers: dict | None = None,
              timeout=TIMEOUT, **options) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self.url + path
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"

        def send() -> requests.Response:
            # A streamed body is read by the try that sends it: each try opens its own.
            data = body() if body is not None else options.get("data")
            extra = {key: value for key, value in options.items() if key != "data"}
            return self.session.request(method, url, headers=headers, data=data,
                                        timeout=timeout, **extra)

        shown = f"{method} {path if not path.startswith('http') else _without_query(path)}"
        try:
            response = send_with_retries(send, self.policy, self.on_retry, rng=self.rng)
        except requests.RequestException as error:
            raise ApiUnavailable(f"cannot reach {_origin(url)}: {describe(error)} "
                                 f"({shown}, {self.policy.retries + 1} tries)") from None
        if response.status_code in expect:
            return response
        raise _failure(response, shown, self.policy.retries + 1)


def _committed(response: requests.Response) -> Committed:
    answer = response.json()
    offset = response.headers.get("Upload-Offset", answer.get("committed_bytes"))
    return Committed(int(answer["chunk_index"]), int(offset))


def _failure(response: requests.Response, shown: str, tries: int) -> Exception:
    """The exception for an answer that is not the one expected."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):  # S3 answers in XML, a proxy in HTML
        answer = {"Message": " ".join(response.text.split())[:300]}
    code, message = answer.get("Code"), answer.get("Message") or response.reason
    said = f"{response.status_code} {code + ': ' if code else ''}{message}"
    if response.status_code == 429 or response.status_code >= 500:
        return ApiUnavailable(f"the API is unavailable: {said} ({shown}, {tries} tries)")
    details = {k: v for k, v in answer.items() if k not in ("Code", "Message")}
    kind = RangeConflict if (response.status_code == 416 or code == "RangeConflict") else ApiRefused
    return kind(f"the API refused {shown}: {said}", response.status_code, code, details,
                dict(response.headers))


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _without_query(url: str) -> str:
    """A presigned URL without its signature, fit for a message."""
    return url.split("?", 1)[0]
