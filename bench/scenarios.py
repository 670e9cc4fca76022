"""The benchmark's scenarios over HTTP against a running Stack. Every loop is bounded in
count and in time; nothing here asserts a timing."""
import json
import statistics
import subprocess
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config

from bench.api import Api
from bench.recording import ffmpeg_binary


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def warm_up(api: Api, chunk: bytes) -> None:
    video_id, token = api.create()
    api.append(video_id, token, chunk)
    api.get(video_id, token)


def emulator_client(service: str, emulator_url: str):
    """A client of the emulator, with the settings the app's own clients use there."""
    assert emulator_url.startswith("http://127.0.0.1:")
    return boto3.client(service, endpoint_url=emulator_url, region_name="us-east-1",
                        aws_access_key_id="emulator", aws_secret_access_key="emulator",
                        config=Config(s3={"addressing_style": "path"},
                                      signature_version="s3v4"))


def catalog_item(emulator_url: str, video_id: int) -> dict:
    """The video's catalog record, read straight from the emulator (for a stuck join)."""
    client = emulator_client("dynamodb", emulator_url)
    item = client.get_item(TableName="videos-local", Key={"video_id": {"N": str(video_id)}},
                           ConsistentRead=True).get("Item", {})
    return {k: list(v.values())[0] for k, v in item.items() if k not in ("media", "token_hash")}


def queue_depth(emulator_url: str) -> dict:
    client = emulator_client("sqs", emulator_url)
    url = client.get_queue_url(QueueName="video-joins-local")["QueueUrl"]
    return client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def stuck_report(emulator_url: str, video_id: int) -> dict:
    try:
        return {"item": catalog_item(emulator_url, video_id), "now": time.time(),
                "queue": {k: v for k, v in queue_depth(emulator_url).items()
                          if k.startswith("ApproximateNumber")}}
    except Exception as error:
        return {"error": repr(error)}


def append_flatness(api: Api, chunks: list[bytes], window: int = 100,
                    time_limit: float = 1800, ready_timeout: float = 180,
                    emulator_url: str | None = None) -> dict:
    """Append all chunks to one new video in order; latency of the first and last `window`."""
    video_id, token = api.create()
    latencies = []
    started = time.monotonic()
    for chunk in chunks:
        latencies.append(api.append(video_id, token, chunk))
        if time.monotonic() - started > time_limit:
            break
    window = min(window, len(latencies) // 2)
    first, last = latencies[:window], latencies[-window:]
    result = {
        "video_id": video_id, "appends": len(latencies), "window": window,
        "first_p50_ms": percentile(first, 50) * 1e3, "first_p95_ms": percentile(first, 95) * 1e3,
        "last_p50_ms": percentile(last, 50) * 1e3, "last_p95_ms": percentile(last, 95) * 1e3,
        "latencies_ms": [round(x * 1e3, 2) for x in latencies],
        "wall_s": time.monotonic() - started,
    }
    result["ratio_p50"] = result["last_p50_ms"] / result["first_p50_ms"]
    result["ratio_p95"] = result["last_p95_ms"] / result["first_p95_ms"]
    # The latency of each consecutive block of `window` appends, to see a trend.
    result["block_p50_ms"] = [percentile(latencies[i:i + window], 50) * 1e3
                              for i in range(0, len(latencies) - window + 1, window)]
    result["block_p95_ms"] = [percentile(latencies[i:i + window], 95) * 1e3
                              for i in range(0, len(latencies) - window + 1, window)]
    # Let the background joins of this video finish so they do not load what follows.
    if ready_timeout <= 0:
        return result
    ready, polls, _ = api.wait_ready(video_id, token, timeout=ready_timeout, interval=0.2)
    result["ready_after_last_append_s"] = ready
    if ready is None and emulator_url:
        result["stuck"] = stuck_report(emulator_url, video_id)
    return result


def concurrency(url: str, chunks: list[bytes], clients: int, per_client: int,
                time_limit: float = 300, ready_timeout: float = 120,
                emulator_url: str | None = None) -> dict:
    """`clients` threads, each with its own session and video, append `per_client` chunks."""
    apis = [Api(url) for _ in range(clients)]
    videos = [api.create() for api in apis]
    barrier = threading.Barrier(clients + 1)
    done = [0] * clients
    errors: list[str] = []
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = [0.0]

    def client(n: int) -> None:
        api, (video_id, token) = apis[n], videos[n]
        barrier.wait(timeout=60)
        try:
            for chunk in chunks[:per_client]:
                if time.monotonic() > deadline[0]:
                    break
                latencies[n].append(api.append(video_id, token, chunk))
                done[n] += 1
        except Exception as error:  # reported, not raised: the other clients go on
            errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + time_limit
    barrier.wait(timeout=60)
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=time_limit + 120)
    wall = time.perf_counter() - started
    total = sum(done)
    every = [x for per in latencies for x in per]
    result = {"clients": clients, "appends": total, "wall_s": wall,
              "appends_per_s": total / wall if wall else 0.0,
              "p50_ms": percentile(every, 50) * 1e3 if every else None,
              "p95_ms": percentile(every, 95) * 1e3 if every else None,
              "errors": errors[:5]}
    # Let their joins finish before the next measurement.
    wait_until = time.monotonic() + ready_timeout
    stuck = []
    for n, (api, (video_id, token)) in enumerate(zip(apis, videos)):
        if done[n]:
            left = max(1.0, wait_until - time.monotonic())
            ready, _, _ = api.wait_ready(video_id, token, timeout=left, interval=0.5)
            if ready is None:
                stuck.append(stuck_report(emulator_url, video_id) if emulator_url else video_id)
        api.close()
    result["stuck"] = stuck
    return result


def time_to_ready(api: Api, recording: Path, chunks: list[bytes], work: Path,
                  emulator_url: str, bucket: str, reference_runs: int = 1,
                  ready_timeout: float = 300, server_log: Path | None = None) -> dict:
    """Append a whole recording, then poll GET until 302; compare with a plain stream-copy
    remux of the same bytes on local disk and with one PUT of them to the same emulator.
    With the stack's log, also what the join that made it ready moved through S3."""
    video_id, token = api.create()
    started = time.perf_counter()
    for chunk in chunks:
        api.append(video_id, token, chunk)
    appended = time.perf_counter()
    ready, polls, response = api.wait_ready(video_id, token, timeout=ready_timeout, interval=0.1)
    result = {"video_id": video_id, "chunks": len(chunks),
              "bytes": sum(len(c) for c in chunks), "append_all_s": appended - started,
              "time_to_ready_s": ready, "polls": polls}
    if ready is None:
        result["stuck"] = stuck_report(emulator_url, video_id)
    else:
        result["join_method"] = api.status(video_id, token).get("join_method")
        if server_log is not None:
            result["final_join_bytes"] = final_join_bytes(server_log, video_id)
    joined = b"".join(chunks)
    assert joined == recording.read_bytes()
    joined_path = work / "joined.webm"
    joined_path.write_bytes(joined)
    remux_times, put_times, fetch_times, compose_times = [], [], [], []
    for _ in range(reference_runs):
        fetch_times.append(fetch_chunks_once(emulator_url, bucket, video_id, len(chunks)))
        compose_times.append(compose_once(emulator_url, bucket, joined))
        out = work / "remuxed.webm"
        t0 = time.perf_counter()
        subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
                        "-i", str(joined_path), "-c", "copy", str(out)],
                       check=True, timeout=600, stdin=subprocess.DEVNULL)
        remux_times.append(time.perf_counter() - t0)
        out.unlink()
        put_times.append(put_once(emulator_url, bucket, joined))
    joined_path.unlink()
    result["chunk_reads_s"] = statistics.median(fetch_times)
    result["s3_compose_s"] = statistics.median(compose_times)
    result["ffmpeg_copy_s"] = statistics.median(remux_times)
    result["s3_put_s"] = statistics.median(put_times)
    result["ffmpeg_copy_runs_s"] = remux_times
    result["s3_put_runs_s"] = put_times
    if ready is not None:
        result["ratio_vs_ffmpeg_copy"] = ready / result["ffmpeg_copy_s"]
        result["ratio_vs_s3_put"] = ready / result["s3_put_s"]
    return result


_BYTE_FIELDS = ("bytes_read", "bytes_written", "bytes_copied_in_s3")


def final_join_bytes(log_path: Path, video_id: int, wait: float = 10) -> dict | None:
    """The bytes the join that made the video ready moved (chalicelib.transfers), from the
    worker's "joined" log line: the join runs in the stack's worker process, and on the
    emulator its wall time hides whether bytes passed through it or were copied in S3.
    The line follows the catalog write a GET sees, so it may take a moment to appear."""
    deadline = time.monotonic() + wait
    while True:
        found = None
        for line in log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{") or '"joined"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "joined" and entry.get("video_id") == video_id:
                found = {name: entry.get(name) for name in _BYTE_FIELDS}  # the last one wins
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def fetch_chunks_once(emulator_url: str, bucket: str, video_id: int, count: int) -> float:
    """Read the video's chunk objects back as a join from chunks does (chalicelib.prefetch,
    same window), and nothing else: the floor of a join that reads them."""
    from chalicelib.adapters.s3 import S3Store
    from chalicelib.prefetch import PREFETCH, prefetch_in_order
    store = S3Store(emulator_client("s3", emulator_url), bucket, presigned_url_seconds=60)

    def fetch(index: int) -> bytes:
        return store.read_chunk(video_id, index)

    t0 = time.perf_counter()
    for _ in prefetch_in_order(list(range(count)), fetch, PREFETCH):
        pass
    return time.perf_counter() - t0


def compose_once(emulator_url: str, bucket: str, body: bytes) -> float:
    """The same bytes stored as segments of a video no one records (not timed), then
    composed into one object by S3 copies the way a join does (chalicelib.adapters.s3's
    S3Composition): what the emulator itself spends assembling a video that no byte of
    passes through the join."""
    from chalicelib.adapters.keys import segment_key
    from chalicelib.adapters.s3 import S3Store
    from chalicelib.media.fold import SEGMENT_BYTES
    store = S3Store(emulator_client("s3", emulator_url), bucket, presigned_url_seconds=60)
    video_id = 999_999_999_999  # no id the counter hands out soon
    segments = [body[at:at + SEGMENT_BYTES] for at in range(0, len(body), SEGMENT_BYTES)]
    numbers = range(len(segments))
    for number in numbers:
        store.put_segment(video_id, number, segments[number])
    key = store.compiled_key(video_id, 1, "webm")
    t0 = time.perf_counter()
    composition = store.start_composition(key, "video/webm")
    for number in numbers:
        composition.copy_segment(number + 1, video_id, number, len(segments[number]))
    composition.complete()
    elapsed = time.perf_counter() - t0
    for stored in [key] + [segment_key(video_id, number) for number in numbers]:
        store.delete(stored)
    return elapsed


def put_once(emulator_url: str, bucket: str, body: bytes) -> float:
    """One PutObject of `body` to the emulator, with the same client settings the app uses."""
    client = emulator_client("s3", emulator_url)
    key = "bench/put-reference.webm"
    t0 = time.perf_counter()
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="video/webm")
    elapsed = time.perf_counter() - t0
    client.delete_object(Bucket=bucket, Key=key)
    return elapsed
