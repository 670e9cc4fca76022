"""`python -m bench.cost`: what one recorded hour costs at list prices, from measured counts.

The request counts are measured, not assumed: a recording of a few minutes (a VP8/Opus WebM
made with the layer's ffmpeg at the requested bitrate, cut into chunks of
bitrate x timeslice bytes) goes through the real service in process, on moto
(`moto.mock_aws`, `wiring.build(settings)` with the chosen stage's settings). A fake clock
moves one timeslice per chunk, so the join's wake-ups (JOIN_DELAY_SECONDS) fall as they
would on AWS: every queued join message whose due time has passed is handed to
`joiner.run`, as the SQS trigger would. Every AWS call is counted by operation (botocore
`before-parameter-build` hooks on the default session, so the clients of every thread are
counted), and every handler call (an append, a join delivery) is a Lambda invocation whose
wall time is measured here, in process (local; Lambda's will differ).

The counts are split into the recording (per recorded second: appends, the join's wake-ups
and folds) and the end (finalize, the final join with its poster, status, one playback),
scaled to --minutes of recording and priced with PRICES. Then the same model is run again
with --after-timeslice-ms, to show the largest term before and after.

moto's SQS keeps DelaySeconds by the wall clock; here the delay is kept by the fake clock
instead (the hook sets DelaySeconds to 0 on the wire after noting the due time), so the
simulation needs no waiting. The SendMessage calls are counted as made.
"""
import argparse
import collections
import contextlib
import dataclasses
import datetime
import decimal
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

# us-east-1 list prices, transcribed on PRICES_TAKEN from the pages named. They are list
# prices, without free tier or discounts, to be checked against the pages before use.
PRICES_TAKEN = "2026-11-29"
PRICES = {
    "lambda_gb_second": (0.0000166667, "x86, per GB-second", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": (0.20 / 1e6, "per request", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_ephemeral_gb_second": (0.0000000309, "per GB-second of /tmp over 512 MB",
                                   "https://aws.amazon.com/lambda/pricing/"),
    "apigw_rest_request": (3.50 / 1e6, "REST API, per request (first 333 M a month)",
                           "https://aws.amazon.com/api-gateway/pricing/"),
    "s3_tier1_request": (0.005 / 1000, "PUT, COPY, POST, LIST (S3 Standard)",
                         "https://aws.amazon.com/s3/pricing/"),
    "s3_tier2_request": (0.0004 / 1000, "GET, HEAD and all other (S3 Standard)",
                         "https://aws.amazon.com/s3/pricing/"),
    "s3_storage_gb_month": (0.023, "S3 Standard, first 50 TB, per GB-month",
                            "https://aws.amazon.com/s3/pricing/"),
    "dynamodb_write_unit": (0.625 / 1e6, "on-demand write request unit (1 KB)",
                            "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_read_unit": (0.125 / 1e6, "on-demand read request unit (4 KB strongly consistent)",
                           "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "sqs_request": (0.40 / 1e6, "standard queue, per request (64 KB chunk)",
                    "https://aws.amazon.com/sqs/pricing/"),
}

# Operations priced as S3's first tier; every other S3 operation but the free ones is second tier.
S3_TIER1 = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
            "CompleteMultipartUpload", "ListObjectsV2", "ListMultipartUploads", "ListObjects"}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}  # DELETE is free
DYNAMO_WRITES = {"UpdateItem", "PutItem", "DeleteItem"}
DYNAMO_READS = {"GetItem", "Query", "Scan"}
# The final join's operations that grow with the recording's length (one per segment);
# the rest of the end is a fixed number of calls per video, save the listing and deleting of
# the sources (one call per 1,000 keys).
PER_SEGMENT = {"s3.UploadPartCopy"}
PER_THOUSAND_KEYS = {"s3.ListObjectsV2", "s3.DeleteObjects"}


def log(message: str) -> None:
    print(f"[cost {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the recording --------------------------------------------------------------------------

def webm_stream(bitrate_kbps: int, seconds: int) -> bytes:
    """A VP8/Opus WebM stream from a pipe (as MediaRecorder writes it) of about
    bitrate_kbps x seconds: a 20 s recording at that bitrate, looped by stream copy."""
    from bench.recording import recording, sized_stream
    source = recording(20, bitrate_k=bitrate_kbps, height=720, log=log)
    return sized_stream(source, bitrate_kbps * 1000 // 8 * seconds, log=log).read_bytes()


# --- counting -----------------------------------------------------------------------------

class Meter:
    """Counts AWS operations (per phase) and Lambda invocations (per kind, with wall times)."""

    def __init__(self, clock):
        self.clock = clock
        self.lock = threading.Lock()
        self.phase = "setup"
        self.calls: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.invocation_calls = collections.Counter()  # calls of the invocation running now
        self.invocations: dict[str, list[float]] = collections.defaultdict(list)
        self.kind_phase: dict[str, str] = {}
        self.queued: list[tuple[float, int]] = []  # (due time, sequence) of each SendMessage
        self.counting = True

    def before_parameter_build(self, model, params, **_):
        if not self.counting:
            return
        name = f"{model.service_model.endpoint_prefix}.{model.name}"
        with self.lock:
            self.calls[self.phase][name] += 1
            self.invocation_calls[name] += 1
        if name == "sqs.SendMessage":
            # moto delays by the wall clock; the simulation keeps the delay on its own clock.
            self.queued.append((self.clock() + params.get("DelaySeconds", 0), len(self.queued)))
            params["DelaySeconds"] = 0

    @contextlib.contextmanager
    def invocation(self, kind: str):
        """One Lambda invocation of `kind`: its wall time, and the calls it made."""
        self.invocation_calls = collections.Counter()
        started = time.perf_counter()
        try:
            yield self.invocation_calls
        finally:
            self.invocations[kind].append(time.perf_counter() - started)
            self.kind_phase[kind] = self.phase

    @contextlib.contextmanager
    def silent(self):
        """Calls made by the measurement itself (reading the item's size), not counted."""
        self.counting = False
        try:
            yield
        finally:
            self.counting = True


def item_bytes(item: dict) -> int:
    """A DynamoDB item's size by the documented rule (attribute names plus values; numbers
    about one byte per two significant digits plus one), which write units are billed on."""
    def size(value) -> int:
        if isinstance(value, str):
            return len(value.encode())
        if isinstance(value, (bytes, bytearray)):
            return len(value)
        if isinstance(value, bool) or value is None:
            return 1
        if isinstance(value, (int, float, decimal.Decimal)):
            digits = str(decimal.Decimal(str(value)).normalize()).replace("-", "").replace(".", "")
            return len(digits.lstrip("0") or "0") // 2 + 2
        if isinstance(value, dict):
            return 3 + sum(len(k.encode()) + size(v) + 1 for k, v in value.items())
        if isinstance(value, (list, set, tuple)):
            return 3 + sum(size(v) + 1 for v in value)
        if hasattr(value, "value"):  # boto3's Binary
            return len(value.value)
        return len(str(value))
    return sum(len(name.encode()) + size(value) for name, value in item.items())


@dataclasses.dataclass
class Measured:
    """What one simulated recording did."""
    stage: str
    timeslice_ms: int
    bitrate_kbps: int
    seconds: float  # recorded (simulated) seconds
    chunks: int
    chunk_bytes: int
    recording_bytes: int
    segments: int
    source_keys: int  # chunks, segments and their state objects before the final join
    compiled_bytes: int
    join_method: str
    calls: dict  # phase -> operation -> count
    invocations: dict  # kind -> list of wall seconds
    kind_phase: dict
    dynamo_item_bytes: int  # the video item's largest size seen
    memory_mb: dict  # function -> MB
    ephemeral_mb: int
    join_delay_seconds: int
    calls_per_append: dict


def stage_settings(stage: str, work_dir: str):
    """The chosen stage's settings, with the local ffmpeg and work directory and the local
    stage's resource names (moto's)."""
    from devtools.emulator import use_fake_credentials
    from devtools.server import stage_environment
    use_fake_credentials()
    os.environ.pop("AWS_ENDPOINT_URL", None)  # moto's in-process mock ignores requests while set
    variables = {**stage_environment("local"), **stage_environment(stage)}
    for name in ("BUCKET_NAME", "TABLE_NAME", "JOB_QUEUE_NAME"):
        variables[name] = stage_environment("local")[name]
    variables["FFMPEG_BINARY"] = os.environ.get("COST_FFMPEG") or str(ROOT / "layers" / "ffmpeg" / "bin" / "ffmpeg")
    variables["WORK_DIR"] = work_dir
    variables["POWERTOOLS_METRICS_DISABLED"] = "true"
    variables.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.update(variables)
    from chalicelib.settings import get_settings
    get_settings.cache_clear()
    return get_settings()


def memory_sizes(stage: str) -> tuple[dict, int]:
    """Memory per function (MB) from .chalice/config.json's stage, and the join's /tmp
    (MB) from the template."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][stage]
    api = config.get("lambda_memory_size", 128)
    functions = config.get("lambda_functions", {})
    join = functions.get("join_videos", {}).get("lambda_memory_size", api)
    template = json.loads((ROOT / ".chalice" / "template.json").read_text())
    ephemeral = 512
    for resource in template.get("Resources", {}).values():
        size = resource.get("Properties", {}).get("EphemeralStorage", {}).get("Size")
        if size:
            ephemeral = max(ephemeral, int(size))
    return {"api_handler": api, "join_videos": join}, ephemeral


def simulate(stage: str = "prod", timeslice_ms: int = 1000, bitrate_kbps: int = 2500,
             seconds: int = 180, data: bytes | None = None) -> Measured:
    """Record `seconds` of a `bitrate_kbps` stream in chunks of one timeslice through the real
    service on moto, with the stage's settings, and count what it did."""
    import boto3
    from moto import mock_aws

    from chalicelib import aws, wiring
    from devtools.emulator import provision
    from tests.helpers import Clock

    chunk_bytes = bitrate_kbps * 1000 // 8 * timeslice_ms // 1000
    data = data if data is not None else webm_stream(bitrate_kbps, seconds)
    chunks = [data[i:i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
    chunks = chunks[:max(1, seconds * 1000 // timeslice_ms)]
    step = timeslice_ms / 1000
    with tempfile.TemporaryDirectory(prefix="cost-") as work_dir, mock_aws():
        settings = stage_settings(stage, work_dir)
        aws.reset()
        boto3.setup_default_session()  # a session of our own, whose hooks every client copies
        clock = Clock()
        meter = Meter(clock)
        boto3.DEFAULT_SESSION._session.register("before-parameter-build.*.*",
                                                meter.before_parameter_build)
        with meter.silent():
            provision(settings)
        services = wiring.build(settings, clock=clock)
        videos, joiner, queue, catalog = (services.videos, services.joiner, services.backend.queue,
                                          services.backend.catalog)
        largest_item = 0

        def item_size(video_id: int) -> int:
            nonlocal largest_item
            with meter.silent():
                item = aws.videos_table().get_item(Key={"video_id": video_id}).get("Item") or {}
            largest_item = max(largest_item, item_bytes(item))
            return largest_item

        delivered = 0

        def deliver_due(until: float) -> None:
            """Every join message due before `until`, in due order, as the SQS trigger would
            hand it to the join function (receive, run, delete: the poller's calls)."""
            nonlocal delivered
            while delivered < len(meter.queued):
                due = sorted(meter.queued[delivered:])[0][0]
                if due >= until:
                    return
                clock.now = max(clock.now, due)
                delivered += 1
                with meter.invocation("join") as made:
                    delivery = queue.receive()
                    outcome = joiner.run(delivery.request.video_id, delivery.request.urgent)
                    delivery.acknowledge()
                kind = ("join: final" if outcome == "joined"
                        else "join: after the end (nothing to do)" if meter.phase == "end"
                        else "join: fold" if made["s3.PutObject"] or made["s3.CreateMultipartUpload"]
                        else "join: wake-up")
                meter.invocations[kind].append(meter.invocations["join"].pop())
                meter.kind_phase[kind] = meter.phase
                item_size(video_id)

        meter.phase = "create"  # once per video, whatever its length
        with meter.invocation("api: create"):
            created = videos.create()
        meter.phase = "recording"
        video_id, token = created.view.video.video_id, created.upload_token
        append_calls = collections.Counter()
        for number, chunk in enumerate(chunks):
            clock.now = 1_000_000.0 + number * step
            with meter.invocation("api: append") as made:
                videos.append(video_id, token, chunk)
            append_calls.update(made)
            item_size(video_id)
            deliver_due(clock.now + step)
        with meter.silent():
            before_end = catalog.get(video_id)
            source_keys = sum(
                page.get("KeyCount", 0) for page in aws.s3().get_paginator("list_objects_v2").paginate(
                    Bucket=settings.bucket_name, Prefix=f"videos/{video_id}/"))

        # The end: the recorder stops, sends finalize, polls the status, the video is played.
        meter.phase = "end"
        clock.now += step / 2
        with meter.invocation("api: finalize"):
            videos.finalize(video_id, token)
        with meter.invocation("api: status"):
            videos.status(video_id, token)
        deliver_due(clock.now + 1)
        with meter.invocation("api: status"):
            videos.status(video_id, token)
        with meter.invocation("api: playback"):
            videos.playback(video_id, token)
        clock.now += settings.join_delay_seconds + 1
        deliver_due(clock.now + 3600)  # the wake-ups still queued find the video joined
        with meter.silent():
            video = catalog.get(video_id)
            head = aws.s3().head_object(Bucket=settings.bucket_name, Key=video.compiled_key)
        memory, ephemeral = memory_sizes(stage)
        aws.reset()
        boto3.DEFAULT_SESSION = None
        return Measured(
            stage=stage, timeslice_ms=timeslice_ms, bitrate_kbps=bitrate_kbps,
            seconds=len(chunks) * step, chunks=len(chunks), chunk_bytes=chunk_bytes,
            recording_bytes=sum(map(len, chunks)), segments=before_end.segment_count,
            source_keys=source_keys, compiled_bytes=head["ContentLength"],
            join_method=video.media.join_method.value if video.media else "?",
            calls={phase: dict(counter) for phase, counter in meter.calls.items() if phase != "setup"},
            invocations={k: v for k, v in meter.invocations.items() if v},
            kind_phase=meter.kind_phase, dynamo_item_bytes=largest_item,
            memory_mb=memory, ephemeral_mb=ephemeral,
            join_delay_seconds=settings.join_delay_seconds,
            calls_per_append={k: v / len(chunks) for k, v in sorted(append_calls.items())})


# --- the model ----------------------------------------------------------------------------

@dataclasses.dataclass
class Term:
    name: str
    count: float  # per recorded hour
    unit: str
    price_key: str
    multiplier: float = 1.0  # units per count (GB-s per invocation, write units per write)

    @property
    def unit_price(self) -> float:
        return PRICES[self.price_key][0] * self.multiplier

    @property
    def cost(self) -> float:
        return self.count * self.unit_price


def scaled_calls(m: Measured, minutes: float) -> collections.Counter:
    """AWS calls of a recording of `minutes`: the recording's calls in proportion to its
    length (the one create aside), the end's once, but for the calls that follow the
    number of segments or of stored keys."""
    ratio = minutes * 60 / m.seconds
    total = collections.Counter()
    for name, count in m.calls.get("recording", {}).items():
        total[name] += count * ratio
    for name, count in m.calls.get("create", {}).items():
        total[name] += count  # with ID_BLOCK_SIZE ids, 1 counter write per block of creates
    segments_ratio = ratio if m.segments else 1
    pages_ratio = math.ceil(m.source_keys * ratio / 1000) / max(1, math.ceil(m.source_keys / 1000))
    for name, count in m.calls.get("end", {}).items():
        total[name] += count * (segments_ratio if name in PER_SEGMENT
                                else pages_ratio if name in PER_THOUSAND_KEYS else 1)
    return total


def invocation_terms(m: Measured, minutes: float) -> list[tuple[str, float, float, str]]:
    """(kind, invocations per recording of `minutes`, mean billed seconds, function)."""
    ratio = minutes * 60 / m.seconds
    rows = []
    for kind, walls in m.invocations.items():
        per = ratio if m.kind_phase.get(kind) == "recording" else 1
        billed = sum(math.ceil(w * 1000) / 1000 for w in walls) / len(walls)  # 1 ms granularity
        function = "api_handler" if kind.startswith("api") else "join_videos"
        rows.append((kind, len(walls) * per, billed, function))
    return rows


def model(m: Measured, minutes: float, retention_days: float) -> dict:
    calls = scaled_calls(m, minutes)
    invocations = invocation_terms(m, minutes)
    terms: list[Term] = []
    api_requests = sum(n for kind, n, _, _ in invocations if kind.startswith("api"))
    terms.append(Term("API Gateway requests", api_requests, "request", "apigw_rest_request"))
    terms.append(Term("Lambda requests (all functions)", sum(n for _, n, _, _ in invocations),
                      "invocation", "lambda_request"))
    for kind, n, billed, function in invocations:
        gb = m.memory_mb[function] / 1024
        terms.append(Term(f"Lambda compute, {kind} ({m.memory_mb[function]} MB x {billed * 1000:.0f} ms)",
                          n, "invocation", "lambda_gb_second", gb * billed))
        if function == "join_videos" and m.ephemeral_mb > 512:
            terms.append(Term(f"Lambda /tmp over 512 MB, {kind}", n, "invocation",
                              "lambda_ephemeral_gb_second", (m.ephemeral_mb - 512) / 1024 * billed))
    s3_tier1 = {k: v for k, v in calls.items() if k.startswith("s3.") and k[3:] in S3_TIER1}
    s3_tier2 = {k: v for k, v in calls.items()
                if k.startswith("s3.") and k[3:] not in S3_TIER1 | S3_FREE}
    appends = next(n for kind, n, _, _ in invocations if kind == "api: append")
    puts_per_append = m.calls_per_append.get("s3.PutObject", 0)
    terms.append(Term("S3 PUT of each chunk", appends * puts_per_append, "request", "s3_tier1_request"))
    terms.append(Term("S3 other PUT/COPY/POST/LIST (" + ", ".join(
        f"{k[3:]} {v - (appends * puts_per_append if k == 's3.PutObject' else 0):,.0f}"
        for k, v in sorted(s3_tier1.items())) + ")",
        sum(s3_tier1.values()) - appends * puts_per_append, "request", "s3_tier1_request"))
    terms.append(Term("S3 GET/HEAD (" + ", ".join(f"{k[3:]} {v:,.0f}" for k, v in sorted(s3_tier2.items())) + ")",
                      sum(s3_tier2.values()), "request", "s3_tier2_request"))
    write_units = math.ceil(m.dynamo_item_bytes / 1024)
    read_units = math.ceil(m.dynamo_item_bytes / 4096)
    writes = sum(v for k, v in calls.items() if k.startswith("dynamodb.") and k[9:] in DYNAMO_WRITES)
    reads = sum(v for k, v in calls.items() if k.startswith("dynamodb.") and k[9:] in DYNAMO_READS)
    terms.append(Term(f"DynamoDB writes ({write_units} WRU each: item up to {m.dynamo_item_bytes} B)",
                      writes, "write", "dynamodb_write_unit", write_units))
    terms.append(Term(f"DynamoDB strongly consistent reads ({read_units} RRU each)", reads, "read",
                      "dynamodb_read_unit", read_units))
    sqs = sum(v for k, v in calls.items() if k.startswith("sqs."))
    terms.append(Term("SQS requests (send; receive and delete by Lambda's poller)", sqs,
                      "request", "sqs_request"))
    gb = m.compiled_bytes * minutes * 60 / m.seconds / 1e9
    storage = Term(f"S3 storage of the video, {gb:.3f} GB for {retention_days:g} days",
                   gb * retention_days / 30, "GB-month", "s3_storage_gb_month")
    per_hour = 60 / minutes
    return {"terms": terms, "storage": storage, "per_hour": per_hour, "calls": calls,
            "invocations": invocations, "minutes": minutes, "retention_days": retention_days}


def money(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def table(result: dict, title: str) -> str:
    terms, storage, per_hour = result["terms"], result["storage"], result["per_hour"]
    recording = sum(t.cost for t in terms) * per_hour
    lines = [f"### {title}", "",
             "| term | count per recorded hour | unit price | cost per recorded hour | share |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for t in sorted(terms, key=lambda t: -t.cost):
        lines.append(f"| {t.name} | {t.count * per_hour:,.1f} | {t.unit_price:.3e} | "
                     f"{money(t.cost * per_hour)} | {100 * t.cost * per_hour / recording:.1f} % |")
    largest = max(terms, key=lambda t: t.cost)
    lines += [f"| **total to record the hour** | | | **{money(recording)}** | 100 % |",
              f"| {storage.name} (per recorded hour) | {storage.count * per_hour:.3f} GB-month | "
              f"{storage.unit_price} | {money(storage.cost * per_hour)} | |",
              f"| **total with storage** | | | **{money(recording + storage.cost * per_hour)}** | |", "",
              f"Largest term of recording: **{largest.name}**, {money(largest.cost * per_hour)} "
              f"({100 * largest.cost / sum(t.cost for t in terms):.0f} % of {money(recording)}).", ""]
    return "\n".join(lines)


def measured_section(m: Measured) -> str:
    rows = ["| what | measured |", "| --- | --- |",
            f"| recording | {m.seconds:.0f} s simulated, {m.chunks} chunks of {m.chunk_bytes:,} B "
            f"({m.bitrate_kbps} kbit/s x {m.timeslice_ms} ms), {m.recording_bytes / 1e6:.1f} MB, "
            f"{m.segments} segments folded while recording, join method `{m.join_method}` |",
            f"| AWS calls per append | " + ", ".join(f"{k} {v:.3f}" for k, v in m.calls_per_append.items()) + " |",
            f"| DynamoDB item, largest | {m.dynamo_item_bytes} B |"]
    for phase, calls in m.calls.items():
        rows.append(f"| AWS calls, {phase} | " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) + " |")
    for kind, walls in m.invocations.items():
        ordered = sorted(walls)
        rows.append(f"| invocations: {kind} | {len(walls)}, wall time p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, "
                    f"max {ordered[-1] * 1000:.1f} ms, total {sum(walls):.2f} s (local, in-process) |")
    return "\n".join(rows)


def per_recorder_rates(m: Measured) -> dict:
    """Requests per recorder-second while recording (for SCALING.md)."""
    recording = m.calls.get("recording", {})
    api = sum(len(w) for k, w in m.invocations.items()
              if k.startswith("api") and m.kind_phase[k] == "recording")
    joins = sum(len(w) for k, w in m.invocations.items()
                if k.startswith("join") and m.kind_phase[k] == "recording")
    join_seconds = sum(sum(w) for k, w in m.invocations.items()
                       if k.startswith("join") and m.kind_phase[k] == "recording")
    append_seconds = sum(m.invocations["api: append"])
    per = 1 / m.seconds
    return {
        "api_requests": api * per,
        "lambda_api_invocations": api * per,
        "lambda_join_invocations": joins * per,
        "api_concurrency_local": append_seconds * per,
        "join_concurrency_local": join_seconds * per,
        "dynamodb_writes": sum(v for k, v in recording.items()
                               if k.startswith("dynamodb.") and k[9:] in DYNAMO_WRITES) * per,
        "dynamodb_reads": sum(v for k, v in recording.items()
                              if k.startswith("dynamodb.") and k[9:] in DYNAMO_READS) * per,
        "s3_put_class": sum(v for k, v in recording.items()
                            if k.startswith("s3.") and k[3:] in S3_TIER1) * per,
        "s3_get_class": sum(v for k, v in recording.items()
                            if k.startswith("s3.") and k[3:] not in S3_TIER1 | S3_FREE) * per,
        "sqs_requests": sum(v for k, v in recording.items() if k.startswith("sqs.")) * per,
    }


def rates_table(before: Measured, after: Measured) -> str:
    a, b = per_recorder_rates(before), per_recorder_rates(after)
    lines = [f"| per recorder-second, while recording | timeslice {before.timeslice_ms} ms | "
             f"timeslice {after.timeslice_ms} ms |", "| --- | ---: | ---: |"]
    for key in a:
        lines.append(f"| {key} | {a[key]:.3f} | {b[key]:.3f} |")
    return "\n".join(lines)


def comparison(before: dict, after: dict, mb: Measured, ma: Measured) -> str:
    names_b = {t.name.split(" (")[0]: t for t in before["terms"]}
    names_a = {t.name.split(" (")[0]: t for t in after["terms"]}
    lines = [f"| term | timeslice {mb.timeslice_ms} ms | timeslice {ma.timeslice_ms} ms | change |",
             "| --- | ---: | ---: | ---: |"]
    ph = before["per_hour"]
    for name in sorted(set(names_b) | set(names_a),
                       key=lambda n: -(names_b[n].cost if n in names_b else 0)):
        cb = names_b[name].cost * ph if name in names_b else 0
        ca = names_a[name].cost * ph if name in names_a else 0
        change = f"{100 * (ca - cb) / cb:+.0f} %" if cb else ""
        lines.append(f"| {name} | {money(cb)} | {money(ca)} | {change} |")
    tb = sum(t.cost for t in before["terms"]) * ph
    ta = sum(t.cost for t in after["terms"]) * ph
    lines.append(f"| **total to record the hour** | **{money(tb)}** | **{money(ta)}** | "
                 f"{100 * (ta - tb) / tb:+.0f} % |")
    return "\n".join(lines)


def tradeoff(mb: Measured, ma: Measured, before: dict, after: dict) -> str:
    """What the longer timeslice costs the recorder, in this run's numbers."""
    joins_b = sum(len(w) for k, w in mb.invocations.items() if k in ("join: wake-up", "join: fold")) / mb.seconds
    joins_a = sum(len(w) for k, w in ma.invocations.items() if k in ("join: wake-up", "join: fold")) / ma.seconds
    return (f"Trade-off: a chunk is what a crash of the browser or a lost connection can lose, and "
            f"what the status lags behind the recording: {mb.chunk_bytes:,} B ({mb.timeslice_ms} ms) "
            f"before, {ma.chunk_bytes:,} B ({ma.timeslice_ms} ms) after. Per-append terms (the chunk's "
            "S3 PUT, the API Gateway request, the append's Lambda request and DynamoDB write) follow "
            "the number of chunks; the folds follow the bytes and do not change. The join's wake-ups "
            f"went from {joins_b * 3600:,.0f} to {joins_a * 3600:,.0f} an hour (measured): a waiting "
            "join sleeps JOIN_DELAY_SECONDS minus the time since the last chunk, which is longer on "
            "average with longer timeslices. Keep the timeslice well below JOIN_DELAY_SECONDS "
            f"({mb.join_delay_seconds} s here): a join that wakes after that long without a chunk "
            "joins the whole recording as if it had ended (folds, compose, verify, poster) each time.")


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeslice-ms", type=int, default=1000)
    p.add_argument("--after-timeslice-ms", type=int, default=2000,
                   help="the timeslice of the 'after' model (0: no comparison)")
    p.add_argument("--bitrate-kbps", type=int, default=2500)
    p.add_argument("--minutes", type=float, default=60, help="the recording's length to price")
    p.add_argument("--retention-days", type=float, default=30)
    p.add_argument("--stage", default="prod", choices=["dev", "prod"])
    p.add_argument("--simulate-seconds", type=int, default=180,
                   help="seconds of recording driven through the service (then scaled)")
    p.add_argument("--out", default=str(RESULTS / "cost-latest.md"))
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = options(argv)
    # The metric lines (CloudWatch EMF) would go to stdout, into the table: off for this run.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    started = time.monotonic()
    data = webm_stream(args.bitrate_kbps, args.simulate_seconds)
    log(f"simulating {args.simulate_seconds} s at {args.timeslice_ms} ms ...")
    # Powertools prints a metric line (EMF) every 100 values whatever the switch: not into the table.
    with contextlib.redirect_stdout(sys.stderr):
        before = simulate(args.stage, args.timeslice_ms, args.bitrate_kbps, args.simulate_seconds, data)
    model_before = model(before, args.minutes, args.retention_days)
    after = model_after = None
    if args.after_timeslice_ms:
        log(f"simulating {args.simulate_seconds} s at {args.after_timeslice_ms} ms ...")
        with contextlib.redirect_stdout(sys.stderr):
            after = simulate(args.stage, args.after_timeslice_ms, args.bitrate_kbps,
                             args.simulate_seconds, data)
        model_after = model(after, args.minutes, args.retention_days)
    prices = "\n".join(f"| {key} | {value:.10g} | {what} | {url} |"
                       for key, (value, what, url) in PRICES.items())
    sections = [
        "# Cost of one recorded hour",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; "
        f"command: `python -m bench.cost {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- stage `{args.stage}` (JOIN_DELAY_SECONDS {before.join_delay_seconds}; memory: API "
        f"{before.memory_mb['api_handler']} MB, join {before.memory_mb['join_videos']} MB, join /tmp {before.ephemeral_mb} MB, from .chalice/config.json "
        "and template.json); recording priced: "
        f"{args.minutes:g} min at {args.bitrate_kbps} kbit/s, kept {args.retention_days:g} days",
        "- **measured**: the AWS calls by operation and the Lambda invocations by kind, of "
        f"{args.simulate_seconds} s recorded through the real service on moto (in process); "
        "**computed**: their scaling to the priced length (recording calls in proportion, the end "
        "once, per-segment copies and per-1,000-key listings by count) and the prices; "
        "**durations** are wall times of each handler call on this machine (local, in-process, "
        "2 shared cores, moto instead of AWS): Lambda's durations will differ (cold starts, "
        "network latency to S3/DynamoDB, moto's in-memory copies instead of S3's server-side ones)",
        "- not priced: CloudWatch Logs ingestion and X-Ray traces (X-Ray is on in `prod`), data transfer out "
        "to viewers, the sweep, the chunks and segments kept during the recording (deleted at the end).",
        "",
        table(model_before, f"Timeslice {args.timeslice_ms} ms"),
    ]
    if after:
        sections += [table(model_after, f"Timeslice {args.after_timeslice_ms} ms"),
                     "### Before and after", "", comparison(model_before, model_after, before, after), "",
                     tradeoff(before, after, model_before, model_after), "",
                     "### Per recorder-second (measured, for SCALING.md)", "",
                     rates_table(before, after), ""]
    sections += ["### Measured", "", measured_section(before), ""]
    if after:
        sections += [measured_section(after), ""]
    sections += ["### Prices (us-east-1 list prices, to be checked)", "",
                 f"Transcribed {PRICES_TAKEN}; no free tier, no discounts.", "",
                 "| key | USD | unit | source |", "| --- | ---: | --- | --- |", prices, "",
                 f"Run time {time.monotonic() - started:.0f} s."]
    text = "\n".join(sections) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        log(f"written to {args.out}")


if __name__ == "__main__":
    main()
