"""An HTTP relay between a client and the running API, for the uploader's tests: it passes
requests on and records each exchange, and on cue fails the way a network and its proxies
do (a 503 or 429 in the API's place, an answer lost after the API acted, a request held
back while the client is killed, a body limit lower than the API's), so that the tests see
what a client sent and the API answered. Presigned S3 URLs point at the emulator, not here:
piece bytes go around the relay, as they go around the API."""
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length",
               "content-encoding", "accept-encoding", "proxy-connection", "te", "upgrade"}

# The route of each request, as the tests name them.
_ROUTES = [("POST", re.compile(r"/create_video/?"), "create"),
           ("POST", re.compile(r"/append_video/\d+/?"), "append"),
           ("POST", re.compile(r"/videos/\d+/pieces/?"), "piece"),
           ("POST", re.compile(r"/videos/\d+/pieces/\w+/commit/?"), "commit"),
           ("POST", re.compile(r"/videos/\d+/finalize/?"), "finalize"),
           ("GET", re.compile(r"/videos/\d+/?"), "status"),
           ("GET", re.compile(r"/get_video/\d+/?"), "playback")]


def route(method: str, path: str) -> str:
    path = path.split("?", 1)[0]
    return next((name for verb, pattern, name in _ROUTES
                 if verb == method and pattern.fullmatch(path)), f"{method} {path}")


@dataclass(frozen=True)
class Exchange:
    route: str
    number: int  # 1 for the first request of its route
    content_range: str | None
    body_bytes: int
    status: int | None  # what the client was answered (None: no answer, the connection closed)
    forwarded: bool  # whether the API saw the request
    api_status: int | None = None  # what the API answered, when it saw it


class Relay:
    """faults[(route, n)] names what happens to the n-th request of a route:
    - "503" / "429": answered so in the API's place (Retry-After: 0), not passed on;
    - "202": answered as the API answers a GET /get_video while it joins, not passed on;
    - "lose-answer": passed on, then the connection closes with no answer (the API acted);
    - "bad-range": passed on with a Content-Range the API cannot parse (it answers 416);
    - "hold": passed on only once `release` is set (`held` says it arrived);
    - "after-hold": sets `release`, and is passed on once the held request was answered.
    body_limit: appends with a larger body get a 413 from here, as from a proxy in front
    of the API with a smaller limit than the API's."""

    def __init__(self, upstream: str, faults: dict | None = None, body_limit: int | None = None):
        self.upstream = upstream
        self.faults = dict(faults or {})
        self.body_limit = body_limit
        self.exchanges: list[Exchange] = []
        self.held = threading.Event()
        self.release = threading.Event()
        self.held_answered = threading.Event()
        self._counts = Counter()
        self._lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                relay._relay(self)

            do_POST = do_PUT = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "Relay":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()  # a held request must not keep a thread waiting
        self._server.shutdown()
        self._server.server_close()

    def of(self, name: str, since: int = 0) -> list[Exchange]:
        """The exchanges of one route, from the `since`-th exchange on."""
        with self._lock:
            return [e for e in self.exchanges[since:] if e.route == name]

    def mark(self) -> int:
        with self._lock:
            return len(self.exchanges)

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        name = route(handler.command, handler.path)
        with self._lock:
            self._counts[name] += 1
            number = self._counts[name]
        fault = self.faults.get((name, number))
        content_range = handler.headers.get("Content-Range")

        def record(status, forwarded, api_status=None):
            with self._lock:
                self.exchanges.append(Exchange(name, number, content_range, len(body), status,
                                               forwarded, api_status))

        if name == "append" and self.body_limit is not None and len(body) > self.body_limit:
            record(413, False)
            self._answer(handler, 413, b"<html><body><h1>413 Request Entity Too Large</h1></body></html>",
                         {"Content-Type": "text/html"})
            return
        if fault in ("503", "429"):
            record(int(fault), False)
            code = "StorageUnavailable" if fault == "503" else "TooManyRequests"
            self._answer(handler, int(fault), json.dumps({"Code": code, "Message": "injected"}).encode(),
                         {"Content-Type": "application/json", "Retry-After": "0"})
            return
        if fault == "202":
            record(202, False)
            self._answer(handler, 202, json.dumps({"status": "processing", "retry_after": 0}).encode(),
                         {"Content-Type": "application/json", "Retry-After": "0"})
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        if fault == "bad-range":
            headers["Content-Range"] = "bytes nonsense"
        if fault == "hold":
            self.held.set()
            self.release.wait(60)
        if fault == "after-hold":
            self.release.set()
            self.held_answered.wait(60)
        answer = requests.request(handler.command, self.upstream + handler.path, data=body,
                                  headers=headers, allow_redirects=False, timeout=120)
        lost = fault == "lose-answer"
        record(None if lost else answer.status_code, True, answer.status_code)
        if fault == "hold":
            self.held_answered.set()
        if lost:
            handler.close_connection = True
            return
        self._answer(handler, answer.status_code, answer.content,
                     {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP})

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
            pass  # the client is gone (killed while its request was held)
