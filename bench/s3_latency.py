"""An S3 latency model: a threaded HTTP proxy in front of the emulator (moto server) that
holds each S3 answer until a modelled S3 would have given it.

On the emulator every request answers in a few milliseconds and a server-side copy
(UploadPartCopy) costs what a PUT of the same bytes costs, so wall time on it says nothing
about how a join would fare on S3: a join that reads a thousand small objects looks fast,
and one that has S3 compose a video looks as slow as uploading it. Put in front of the
emulator for the S3 traffic of one measured join (the service reaches it through
AWS_ENDPOINT_URL_S3, which chalicelib.aws and boto3 honour, so no product change), the
proxy forwards every request unchanged and answers no sooner than the model says:

    modelled = first_byte_s
             + (request body bytes + response body bytes) / connection_bytes_per_s
             + bytes S3 copies / copy_bytes_per_s            (UploadPartCopy, CopyObject)
             + complete_s                                    (CompleteMultipartUpload)

The size of a copy comes from x-amz-copy-source-range, else from a HEAD of the source sent
to the emulator by the proxy itself (not counted as a request). Each request is held for
max(modelled, what the emulator really took): the emulator's own time is the floor, so
where the emulator is slower than the model (it copies and hashes every byte of a
composed object in Python) the excess is counted per operation (`excess_s`) and reported.

Defaults and where they come from:

- first_byte_s = 0.150: "consistent small object latencies (and first-byte-out latencies
  for larger objects) of roughly 100-200 milliseconds", Amazon S3 User Guide, "Best
  practices design patterns: optimizing Amazon S3 performance",
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html
  (the midpoint; the same guide's whitepaper says small requests, under 512 KB, often have
  median latencies "in the tens of milliseconds": 0.150 is the pessimistic reading).
- connection_mb_s = 85: "Make one concurrent request for each 85-90 MB/s of desired network
  throughput", Best Practices Design Patterns: Optimizing Amazon S3 Performance
  (whitepaper), "Horizontal Scaling and Request Parallelization for High Throughput",
  https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/horizontal-scaling-and-request-parallelization-for-high-throughput.html
  (the lower end), applied to request and response bodies alike, per connection.
- copy_mb_s = 85: AN ASSUMPTION. AWS publishes no rate for UploadPartCopy/CopyObject; this
  takes S3 to copy inside itself no faster than one connection transfers. One public
  report (2013, mumrah/s3-multipart pull request #13: 171 GB copied with 100 MB parts,
  40 at a time, in 385 s) works out to about 11 MB/s per concurrent part copy: pass
  --copy-mb-s 11 to see the pessimistic case.
- complete_s = 0.200: AN ASSUMPTION, on top of first_byte_s. The CompleteMultipartUpload
  reference only says its processing "could take several minutes to finalize"
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html).

Not modelled: TLS, connection set-up, DNS, throttling (503 SlowDown), the instance's or the
Lambda function's total network bandwidth (the model caps each connection, not their sum),
and variance: every request of a kind takes the same modelled time.

`python -m bench.s3_latency --upstream http://127.0.0.1:PORT` runs the proxy alone (it
prints its URL); bench.ready starts it in process.
"""
import argparse
import http.client
import http.server
import socketserver
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass

MB = 1_000_000

SOURCES = {
    "first_byte_s": "AWS, S3 User Guide, optimizing-performance: first-byte latency roughly "
                    "100-200 ms (midpoint)",
    "connection_mb_s": "AWS, S3 performance whitepaper, horizontal scaling: one request per "
                       "85-90 MB/s (lower end)",
    "copy_mb_s": "assumption (AWS publishes no UploadPartCopy rate): as fast as one connection",
    "complete_s": "assumption (AWS: Complete 'could take several minutes'), on top of first byte",
}

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "expect", "content-length", "host"}


@dataclass(frozen=True)
class LatencyModel:
    first_byte_s: float = 0.150
    connection_mb_s: float = 85.0
    copy_mb_s: float = 85.0
    complete_s: float = 0.200

    def seconds(self, operation: str, request_bytes: int, response_bytes: int,
                copied_bytes: int = 0) -> float:
        modelled = self.first_byte_s
        modelled += (request_bytes + response_bytes) / (self.connection_mb_s * MB)
        modelled += copied_bytes / (self.copy_mb_s * MB)
        if operation == "CompleteMultipartUpload":
            modelled += self.complete_s
        return modelled

    def describe(self) -> dict:
        return {name: {"value": value, "source": SOURCES[name]} for name, value in asdict(self).items()}


@dataclass
class OperationStats:
    requests: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    copied_bytes: int = 0
    modelled_s: float = 0.0  # the model's time, summed over requests
    upstream_s: float = 0.0  # what the emulator took, summed
    held_s: float = 0.0  # how long the proxy held the requests in all (>= modelled_s)
    excess_s: float = 0.0  # the emulator's time beyond the model, summed

    def add(self, other: "OperationStats") -> None:
        for name in asdict(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def operation_of(method: str, path: str, headers) -> str:
    """The S3 operation of a path-style request (as chalicelib's clients send them here)."""
    url = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    key = url.path.lstrip("/").partition("/")[2]
    copy = headers.get("x-amz-copy-source") is not None
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if not key:
            return "CreateBucket"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "delete" in query:
            return "DeleteObjects"
        return "Post"
    if method == "GET":
        if not key:
            return "ListMultipartUploads" if "uploads" in query else "ListObjects"
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return method


def _range_size(header: str | None) -> int | None:
    if not header or not header.startswith("bytes="):
        return None
    first, _, last = header[len("bytes="):].partition("-")
    try:
        return int(last) - int(first) + 1
    except ValueError:
        return None


class LatencyProxy:
    """The proxy on 127.0.0.1 (a free port unless given); `url` is its endpoint URL."""

    def __init__(self, upstream_url: str, model: LatencyModel = LatencyModel(), port: int = 0):
        upstream = urllib.parse.urlsplit(upstream_url)
        assert upstream.scheme == "http" and upstream.hostname, upstream_url
        self.upstream = (upstream.hostname, upstream.port or 80)
        self.model = model
        self._lock = threading.Lock()
        self._stats: dict[str, OperationStats] = {}
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server(("127.0.0.1", port), Handler)
        host, bound = self._server.server_address[:2]
        self.url = f"http://{host}:{bound}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="s3-latency-proxy")

    def start(self) -> "LatencyProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> "LatencyProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._stats = {}

    def stats(self) -> dict[str, OperationStats]:
        """What went through since the last reset, by operation (copies)."""
        with self._lock:
            return {op: OperationStats(**asdict(s)) for op, s in self._stats.items()}

    def totals(self) -> OperationStats:
        total = OperationStats()
        for s in self.stats().values():
            total.add(s)
        return total

    def _record(self, operation: str, sample: OperationStats) -> None:
        with self._lock:
            self._stats.setdefault(operation, OperationStats()).add(sample)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 does: the SDK's pool reuses connections
    owner: LatencyProxy

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, *args) -> None:  # one line per request is noise
        pass

    def do_GET(self):
        self._relay()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict):
        """One request to the emulator on this connection's own upstream connection
        (reconnecting once if the emulator closed it)."""
        for attempt in (1, 2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=600)
            try:
                self._upstream.request(method, path, body=body, headers=headers)
                response = self._upstream.getresponse()
                return response, response.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise

    def _copied_bytes(self, headers: dict) -> int:
        size = _range_size(self.headers.get("x-amz-copy-source-range"))
        if size is not None:
            return size
        source = self.headers["x-amz-copy-source"]
        source, _, version = source.partition("?")
        path = "/" + urllib.parse.quote(urllib.parse.unquote(source).lstrip("/"))
        if version:
            path += "?" + version
        head = {k: v for k, v in headers.items()
                if k.lower() in ("authorization", "x-amz-date", "x-amz-security-token")}
        head["Host"] = headers["Host"]
        head["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        response, _ = self._exchange("HEAD", path, None, head)
        return int(response.getheader("Content-Length") or 0)

    def _relay(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        operation = operation_of(self.command, self.path, self.headers)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = "%s:%d" % self.owner.upstream
        copied = self._copied_bytes(headers) if operation in ("UploadPartCopy", "CopyObject") else 0
        response, data = self._exchange(self.command, self.path, body, headers)
        upstream = time.monotonic() - started
        response_bytes = len(data)
        modelled = self.owner.model.seconds(operation, len(body), response_bytes, copied)
        wait = modelled - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)
        # Counted before the client has its answer: a count read (or reset) right after
        # the call returns includes it.
        held = time.monotonic() - started
        self.owner._record(operation, OperationStats(
            requests=1, request_bytes=len(body), response_bytes=response_bytes,
            copied_bytes=copied, modelled_s=modelled, upstream_s=upstream, held_s=held,
            excess_s=max(0.0, upstream - modelled)))
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
        elif response.status not in (204, 304):
            self.send_header("Content-Length", str(response_bytes))
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(data)
        self.wfile.flush()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.s3_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, help="the emulator's URL (AWS_ENDPOINT_URL)")
    p.add_argument("--port", type=int, default=0)
    add_model_arguments(p)
    args = p.parse_args(argv)
    with LatencyProxy(args.upstream, model_from(args), args.port) as proxy:
        print(f"S3 latency proxy at {proxy.url} -> {args.upstream}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    d = LatencyModel()
    p.add_argument("--first-byte-ms", type=float, default=d.first_byte_s * 1e3,
                   help="per-request first-byte latency (default %(default)s: AWS, 100-200 ms)")
    p.add_argument("--connection-mb-s", type=float, default=d.connection_mb_s,
                   help="per-connection throughput of request and response bodies, MB/s "
                        "(default %(default)s: AWS, 85-90 MB/s per request)")
    p.add_argument("--copy-mb-s", type=float, default=d.copy_mb_s,
                   help="server-side copy rate of one UploadPartCopy/CopyObject, MB/s "
                        "(default %(default)s: an assumption, AWS publishes none)")
    p.add_argument("--complete-ms", type=float, default=d.complete_s * 1e3,
                   help="CompleteMultipartUpload latency on top of the first byte "
                        "(default %(default)s: an assumption)")


def model_from(args: argparse.Namespace) -> LatencyModel:
    return LatencyModel(first_byte_s=args.first_byte_ms / 1e3, connection_mb_s=args.connection_mb_s,
                        copy_mb_s=args.copy_mb_s, complete_s=args.complete_ms / 1e3)


if __name__ == "__main__":
    main()
