"""`python -m bench.rendition`: the H.264/AAC rendition made in pieces against one pass.

On the 10-minute 720p VP8/Opus recording (bench/work/rec-720p-600s-2500k.webm, made as
bench/recording.py makes it when absent; `--seconds 120` uses its first 2 minutes), in
one run:

- the single pass (chalicelib.media.rendition.render_single_pass): wall time;
- the pieces (render) with 1, 2 and 4 workers (WORKERS; on a 2-core machine 4
  oversubscribes the cores): wall time, each step, the time of each piece's encode and its
  work per second of video (median, p95, max) and the pieces' lengths; every output is
  checked against the single pass (frame count, duration, audio and video ending together);
- a few pieces encoded again on one core alone (the process pinned to CPU 0): the time a
  piece takes on 1 vCPU, which is what a Lambda of 1,769 MB has;
- the audio-only file that copy_audio writes before the video is cut (its size, the
  copy's time) and encode_audio on it alone, on both cores and pinned to one core.

Then a model, not a measurement, of the rendition on Lambda as a fan-out of queued jobs
(plan job: audio copy -> audio job, then the cut -> piece jobs; -> assemble job) with 20-60 pieces at once, for a 10-
and a 60-minute recording, from those times and the assumptions in LAMBDA below, and
writes bench/results/rendition-latest.md. Timings are never asserted in the tests.
"""
import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.recording import WORK, ffmpeg_binary, recording  # noqa: E402
from chalicelib.media import rendition  # noqa: E402
from chalicelib.media.ffmpeg import Ffmpeg  # noqa: E402
from bench.provenance import git
from chalicelib.adapters.s3 import _UPLOAD as TRANSFERS  # noqa: E402  how the product moves files
from chalicelib.steps import TRANSFERS_AT_ONCE  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SOURCE_SECONDS = 600
ONE_CORE_SAMPLE = 3  # pieces encoded again pinned to one core
WORKERS = (1, 2, 4)  # piece workers of render(); 4 oversubscribes a 2-core machine

# The model's assumptions. Lambda's CPU: "Lambda allocates CPU power in proportion to the
# amount of memory configured ... At 1,769 MB, a function has the equivalent of one vCPU"
# (AWS Lambda Developer Guide, "Configure Lambda function memory", section "Memory and
# computing power": https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
# SQS: the plan job sends one SendMessage per step, 8 at a time (chalicelib/adapters/sqs.py).
LAMBDA = {
    "memory_mb": {1: 1769, 2: 3538},  # vCPUs -> the memory that buys them (AWS guide above)
    "core_speed": 1.0,  # a Lambda vCPU as fast as one core here: an assumption, not measured
    "s3_mb_per_s": 80.0,  # one connection's GET or PUT throughput (assumed; not published)
    "s3_request_s": 0.1,  # first byte of a GET or a PUT's answer (assumed)
    # connections a job keeps busy at once, each at s3_mb_per_s: the product's transfers
    # send an object in parts of TRANSFERS.multipart_chunksize, TRANSFERS.max_concurrency
    # at once; the plan job's many PUTs share as many (an assumption kept modest)
    "connections": TRANSFERS.max_concurrency,
    "dispatch_s": 1.0,  # SQS to a running handler, cold start with the layer (assumed)
    "sqs_at_once": 8,  # SendMessage calls at once, as chalicelib/adapters/sqs.py sends them
    "sqs_send_s": 0.1,  # one SendMessage request (assumed)
    "concurrency": (20, 40, 60),
    "lengths": (600, 3600),
    "goals": {600: 30.0, 3600: 60.0},  # seconds after the original is ready
}
# The source's bytes per second are measured from the recording (its file size / length).




def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    version = subprocess.run([ffmpeg_binary(), "-version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{' '.join(version.split()[:3])}")


def source_for(seconds: int | None, log) -> Path:
    full = recording(SOURCE_SECONDS, log=log)
    if not seconds or seconds >= SOURCE_SECONDS:
        return full
    cut = WORK / f"{full.stem}-first{seconds}s.webm"
    if not cut.exists():
        subprocess.run([ffmpeg_binary(), "-hide_banner", "-v", "error", "-y", "-i", str(full),
                        "-map", "0", "-c", "copy", "-t", str(seconds), str(cut)], check=True)
    return cut


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def stream_ends(ffmpeg: Ffmpeg, path: str) -> tuple[int, float, float]:
    """(video frames, video end, audio end) in seconds, from the packets."""
    video = ffmpeg.video_packets(path)
    audio = ffmpeg.audio_packets(path)
    video_end = max(p.pts + p.duration for p in video) - min(p.pts for p in video)
    audio_end = max(start + length for start, length in audio) if audio else 0.0
    return len(video), video_end, audio_end


def one_core_times(ffmpeg: Ffmpeg, source: str, pieces, work: str
                   ) -> tuple[list[tuple[float, float]], dict]:
    """(piece seconds, encode seconds) of a few pieces encoded with this process (and so
    its ffmpeg) pinned to CPU 0; and the audio-only file copy_audio writes: its size and
    encode_audio on it alone, on every core and pinned to CPU 0 (output size too)."""
    chosen = sorted({0, len(pieces) // 2, max(0, len(pieces) - 2)})[:ONE_CORE_SAMPLE]
    audio_source = rendition.copy_audio(ffmpeg, source, os.path.join(work, "audio-source.mka"))
    sources = rendition.split_pieces(ffmpeg, source, pieces, work)
    audio = {"file_bytes": os.path.getsize(audio_source)}
    started = time.monotonic()
    rendition.encode_audio(ffmpeg, audio_source, os.path.join(work, "audio-all-cores.m4a"))
    audio["encode_s"] = time.monotonic() - started
    audio["out_bytes"] = os.path.getsize(os.path.join(work, "audio-all-cores.m4a"))
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        started = time.monotonic()
        rendition.encode_audio(ffmpeg, audio_source, os.path.join(work, "audio-one-core.m4a"))
        audio["encode_one_core_s"] = time.monotonic() - started
        times = []
        for index in chosen:
            started = time.monotonic()
            rendition.encode_piece(ffmpeg, sources[index], pieces[index],
                                   os.path.join(work, f"one-core-{index}.mp4"))
            times.append((pieces[index].seconds, time.monotonic() - started))
        return times, audio
    finally:
        os.sched_setaffinity(0, before)


def model(measured: dict) -> list[dict]:
    """The rendition on Lambda as queued jobs, per recording length, concurrency and
    memory. Critical path: max(audio queued + audio job, plan job + waves x piece job) +
    assemble job (the plan job queues the audio job once it has copied the audio out and
    stored it, then cuts the video and queues the piece jobs once their inputs are stored;
    the assemble job is queued by the last of them to finish)."""
    mb = LAMBDA["s3_mb_per_s"]
    request = LAMBDA["s3_request_s"]
    dispatch = LAMBDA["dispatch_s"]
    connections = LAMBDA["connections"]

    def transfer(size_mb: float) -> float:
        """One object's GET or PUT, in parts over up to `connections` connections."""
        parts = max(1, math.ceil(size_mb * 1e6 / TRANSFERS.multipart_chunksize))
        return request + size_mb / (min(connections, parts) * mb)

    def many(files: int, size_mb: float) -> float:
        """Many files' GETs or PUTs (the pieces), TRANSFERS_AT_ONCE at once, sharing
        `connections` connections' throughput."""
        return math.ceil(files / TRANSFERS_AT_ONCE) * request + size_mb / (connections * mb)

    rows = []
    for length in LAMBDA["lengths"]:
        scale = length / measured["seconds"]
        source_mb = measured["source_mb_per_s"] * length
        rendition_mb = measured["rendition_mb_per_s"] * length
        audio_file_mb = measured["audio_file_mb_per_s"] * length  # the audio-only copy
        audio_mb = measured["audio_out_mb_per_s"] * length  # the encoded m4a
        for vcpus, rate_key, audio_key in ((1, "rate_1", "audio_s_1"), (2, "rate_2", "audio_s_2")):
            rate = measured[rate_key] / LAMBDA["core_speed"]
            audio_s = measured[audio_key] / LAMBDA["core_speed"] * scale
            for concurrency in LAMBDA["concurrency"]:
                piece_s = min(60.0, max(measured["keyframe_s"], length / concurrency))
                count = math.ceil(length / piece_s)
                waves = math.ceil(count / concurrency)
                # plan job: GET the source, copy the audio out, PUT it, send its message;
                # then plan + split, PUT the count pieces' sources, send count messages
                audio_queued = (dispatch + transfer(source_mb) + measured["audio_copy_s"] * scale
                                + transfer(audio_file_mb) + LAMBDA["sqs_send_s"])
                put = many(count, source_mb)
                send = math.ceil(count / LAMBDA["sqs_at_once"]) * LAMBDA["sqs_send_s"]
                plan = audio_queued + measured["plan_split_s"] * scale + put + send
                piece = (dispatch + transfer(source_mb / count) + piece_s * rate
                         + transfer(rendition_mb / count))
                audio = dispatch + transfer(audio_file_mb) + audio_s + transfer(audio_mb)
                # assemble job: the pieces' heads (ranged reads, a few at once) and the m4a;
                # then the MP4 streamed: each piece copied while the next come down and the
                # parts before it go up (steps.WorkFiles.publish_joined), so it lasts the
                # longer of the copy and the GETs + PUTs sharing the job's connections
                stream = max(measured["assemble_s"] * scale, 2 * rendition_mb / (connections * mb))
                join = (dispatch + math.ceil(count / TRANSFERS_AT_ONCE) * request + transfer(audio_mb)
                        + transfer(rendition_mb / count) + stream + request)
                total = max(audio_queued + audio, plan + waves * piece) + join
                rows.append({"length": length, "vcpus": vcpus, "memory": LAMBDA["memory_mb"][vcpus],
                             "concurrency": concurrency, "piece_s": piece_s, "pieces": count,
                             "waves": waves, "audio_queued": audio_queued, "plan": plan,
                             "put": put, "piece": piece, "audio": audio, "join": join,
                             "total": total, "goal": LAMBDA["goals"][length],
                             "met": total <= LAMBDA["goals"][length]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=None,
                        help="use only the recording's first SECONDS (e.g. 120)")
    parser.add_argument("--target", type=float, default=45.0, help="piece length aimed at (s)")
    parser.add_argument("--max", type=float, default=60.0, help="longest piece (s)")
    args = parser.parse_args()
    log = lambda text: print(text, flush=True)  # noqa: E731
    ffmpeg = Ffmpeg(ffmpeg_binary())
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    host = machine()
    tree = {"head": git("rev-parse", "HEAD"), "changed": git("status", "--porcelain").splitlines()}
    began = time.monotonic()
    source = str(source_for(args.seconds, log))
    info = ffmpeg.probe(source)
    log(f"source {Path(source).name}: {info.duration:.1f} s, {os.path.getsize(source) / 1e6:.1f} MB, "
        f"{info.describe()}")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=WORK) as work:
        single_out = os.path.join(work, "single.mp4")
        log("single pass ...")
        single_s = rendition.render_single_pass(ffmpeg, source, single_out)
        single_frames, single_video_end, single_audio_end = stream_ends(ffmpeg, single_out)
        log(f"  {single_s:.1f} s, {single_frames} frames")
        runs = []
        for workers in WORKERS:
            out = os.path.join(work, f"pieces-{workers}.mp4")
            log(f"pieces, {workers} worker(s) ...")
            report = rendition.render(ffmpeg, source, out, workers=workers,
                                      target_seconds=args.target, max_seconds=args.max,
                                      work_dir=work)
            frames, video_end, audio_end = stream_ends(ffmpeg, out)
            runs.append({"workers": workers, "report": report, "frames": frames,
                         "duration": ffmpeg.probe(out).duration, "av": video_end - audio_end,
                         "size": os.path.getsize(out)})
            log(f"  {report.total_seconds:.1f} s ({single_s / report.total_seconds:.2f}x), "
                f"{len(report.pieces)} pieces, {frames} frames")
        pieces = runs[0]["report"].pieces
        log(f"{ONE_CORE_SAMPLE} pieces on one core ...")
        one_core, audio_alone = one_core_times(ffmpeg, source, pieces, work)
        single_size = os.path.getsize(single_out)
    wall = time.monotonic() - began
    load_end = os.getloadavg()
    first = runs[0]["report"]  # 1 worker: each step alone on the machine
    media = info.duration
    keys = [p.start for p in pieces]
    measured = {
        "seconds": media,
        "rate_1": sum(t for _, t in one_core) / sum(s for s, _ in one_core),
        "rate_2": sum(first.piece_seconds) / sum(p.seconds for p in pieces),
        "plan_split_s": first.plan_seconds + first.split_seconds,
        "audio_copy_s": first.audio_copy_seconds,
        "audio_s_render": first.audio_seconds,  # in the 1-worker run, on the audio-only file
        "audio_s_1": audio_alone["encode_one_core_s"],  # alone, pinned to one core
        "audio_s_2": audio_alone["encode_s"],  # alone, every core
        "audio_file_mb_per_s": audio_alone["file_bytes"] / 1e6 / media,
        "audio_out_mb_per_s": audio_alone["out_bytes"] / 1e6 / media,
        "source_mb_per_s": os.path.getsize(source) / 1e6 / media,
        "assemble_s": first.assemble_seconds,
        "rendition_mb_per_s": runs[0]["size"] / 1e6 / media,
        "keyframe_s": 2.0,
    }
    rows = model(measured)
    text = report_text(args, started_at, host, source, info, single_s, single_frames,
                       single_video_end - single_audio_end, single_size, runs, one_core,
                       measured, rows, wall, keys, load_start, load_end, tree)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rendition-latest.md").write_text(text)
    print(text)


def report_text(args, started_at, host, source, info, single_s, single_frames, single_av,
                single_size, runs, one_core, measured, rows, wall, keys, load_start,
                load_end, tree) -> str:
    command = ("cd /work/main && .venv/bin/python -m bench.rendition"
               + (f" --seconds {args.seconds}" if args.seconds else "")
               + (f" --target {args.target:g}" if args.target != 45.0 else "")
               + (f" --max {args.max:g}" if args.max != 60.0 else ""))
    changed = tree["changed"]  # as the run started, when it imported the code it measures
    head_end = git("rev-parse", "HEAD")
    cores = os.cpu_count() or 1
    load = lambda values: " / ".join(f"{v:.2f}" for v in values)  # noqa: E731
    lines = [
        "# Rendition: H.264/AAC MP4 in pieces against one pass",
        "",
        f"- date: {started_at}; commit at start: `{tree['head']}`"
        + (f" (HEAD moved to `{head_end}` during the run; the code measured is the tree at "
           "start)" if head_end != tree["head"] else "") + "; at start "
        + (f"the tree had uncommitted changes ({len(changed)} paths: "
           + ", ".join(line.split(maxsplit=1)[-1] for line in changed) + "), which this run used"
           if changed else "the tree had no uncommitted changes"),
        f"- machine: {host}; load average (1 / 5 / 15 min) at start {load(load_start)}, at end "
        f"{load(load_end)} (the runs' own ffmpegs count: x264 runs several threads). A load "
        "well above the cores at start means other work shared the machine",
        f"- command: `{command}` (target {args.target:g} s, max {args.max:g} s); total wall time "
        f"{wall:.0f} s",
        f"- source: {Path(source).name}, {info.duration:.1f} s, "
        f"{os.path.getsize(source) / 1e6:.1f} MB, {info.describe()}",
        f"- encoder: {rendition.VIDEO_OPTIONS['c:v']} {rendition.VIDEO_OPTIONS['preset']} CRF "
        f"{rendition.VIDEO_OPTIONS['crf']}, High@4.1 yuv420p; AAC 128k (mono kept mono); each "
        "ffmpeg uses every core it sees (x264's own threads)",
        f"- piece workers {', '.join(str(w) for w in WORKERS)} on {cores} cores"
        + (f": {', '.join(str(w) for w in WORKERS if w > cores)} worker(s) oversubscribe the "
           "cores (more ffmpegs than cores, each with its own x264 threads)"
           if any(w > cores for w in WORKERS) else ""),
        "",
        "## Measured on this machine",
        "",
        "| run | wall time | speed-up vs single pass | pieces | piece encode median / p95 / max | "
        "encode s per s of video median / p95 / max | piece length median / max | audio copy "
        "| split + plan | audio pass | assemble | frames | duration | video end - audio end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| single pass | {single_s:.1f} s | 1.00x | - | - | "
        f"{single_s / info.duration:.2f} (whole) | - | - | - | - | - | {single_frames} | "
        f"{info.duration:.2f} s (source) | {single_av * 1000:+.0f} ms |",
    ]
    for run in runs:
        report = run["report"]
        times = report.piece_seconds
        lengths = [p.seconds for p in report.pieces]
        work = [t / p.seconds for t, p in zip(times, report.pieces)]
        label = ""
        if run["workers"] == cores:
            label = " (= cpu count)"
        elif run["workers"] > cores:
            label = f" (oversubscribes {cores} cores)"
        lines.append(
            f"| pieces, {run['workers']} worker{'s' if run['workers'] > 1 else ''}{label} | "
            f"{report.total_seconds:.1f} s | {single_s / report.total_seconds:.2f}x | "
            f"{len(report.pieces)} | {statistics.median(times):.1f} / {percentile(times, 0.95):.1f} / "
            f"{max(times):.1f} s | {statistics.median(work):.2f} / {percentile(work, 0.95):.2f} / "
            f"{max(work):.2f} | {statistics.median(lengths):.1f} / {max(lengths):.1f} s | "
            f"{report.audio_copy_seconds:.2f} s | {report.plan_seconds + report.split_seconds:.2f} s | {report.audio_seconds:.1f} s | "
            f"{report.assemble_seconds:.2f} s | {run['frames']}"
            f"{' (same)' if run['frames'] == single_frames else ' (**differs**)'} | "
            f"{run['duration']:.2f} s | {run['av'] * 1000:+.0f} ms |")
    notes = [p for p in runs[0]["report"].pieces if p.note]
    media = measured["seconds"]
    lines += [
        "",
        "- audio copy: copy_audio's stream copy of the audio track alone, before the video is "
        "planned and split; the audio pass of each run is encode_audio on that file, started "
        "as soon as it is copied (so it shares the cores with the plan, the split and the "
        "pieces, whatever the workers)",
        f"- audio-only file (copy_audio's stream copy of the Opus track): "
        f"{measured['audio_file_mb_per_s'] * media:.2f} MB for {media:.0f} s "
        f"({measured['audio_file_mb_per_s'] * 8 * 1000:.0f} kbit/s; the source is "
        f"{measured['source_mb_per_s'] * media:.1f} MB); encode_audio on it alone: "
        f"{measured['audio_s_2']:.1f} s on every core, {measured['audio_s_1']:.1f} s pinned to "
        f"one core ({measured['audio_s_render']:.1f} s in the 1-worker run); the m4a "
        f"{measured['audio_out_mb_per_s'] * media:.2f} MB",
        f"- one core alone (process pinned to CPU 0), pieces "
        + ", ".join(f"{s:.1f} s in {t:.1f} s" for s, t in one_core)
        + f": {measured['rate_1']:.2f} s of encode per second of video (1 vCPU); with both "
        f"cores and no other job (1 worker): {measured['rate_2']:.2f} s per second (2 vCPUs)",
        f"- sizes: single pass {single_size / 1e6:.1f} MB, pieces {runs[0]['size'] / 1e6:.1f} MB",
        f"- keyframes of the source every 2 s (ffmpeg -g 60 at 30 fps); the plan's cuts: "
        + ", ".join(f"{k:.0f}" for k in keys) + " s"
        + (f"; pieces longer than max: {len(notes)}" if notes else "; no piece longer than max"),
        "",
        "## Model: the rendition on Lambda as queued jobs, 20-60 pieces at once",
        "",
        "Calculated, not measured. Jobs, each its own Lambda invocation started by an SQS "
        "message: the plan job (GET the source, copy_audio, PUT the audio-only file and send "
        "the audio's message; then plan_pieces, split_pieces, PUT every piece's source, send "
        "one message per piece); a piece job per piece, all at once up to the "
        "concurrency (GET its piece source, source size / pieces; encode_piece; PUT); the audio "
        "job, started once the plan job has sent its message (GET the audio-only file, "
        "encode_audio, PUT the m4a); the assemble job, queued by whichever finishes last (a "
        "ranged GET of each encoded piece's head, a few at once, and the m4a; the joined "
        "index written from them; then the MP4 streamed into a multipart upload: each piece "
        "fetched while the one before is copied and the parts before it go up).",
        "",
        "Per-piece encode time = piece length x the rate measured above (1 vCPU: the one-core "
        "rate; 2 vCPUs: the 1-worker rate); the audio encode: the measured audio-only time "
        "(1 vCPU: pinned to one core; 2 vCPUs: every core) scaled with length; a Lambda vCPU "
        f"assumed as fast as a core here (x{LAMBDA['core_speed']:g}). Memory: "
        f"{LAMBDA['memory_mb'][1]:,} MB gives 1 vCPU and {LAMBDA['memory_mb'][2]:,} MB 2 (AWS "
        "Lambda Developer Guide, \"Memory and computing power\": \"At 1,769 MB, a function has "
        "the equivalent of one vCPU\", https://docs.aws.amazon.com/lambda/latest/dg/"
        "configuration-memory.html). Assumed, not measured: S3 "
        f"{LAMBDA['s3_mb_per_s']:g} MB/s per connection for a GET or PUT plus "
        f"{LAMBDA['s3_request_s']:g} s per request; an object moves in parts of "
        f"{TRANSFERS.multipart_chunksize / 2 ** 20:g} MiB over min(parts, {LAMBDA['connections']}) "
        f"connections, as the product's transfers send it (TransferConfig max_concurrency "
        f"{TRANSFERS.max_concurrency}); the pieces are stored and fetched {TRANSFERS_AT_ONCE} "
        f"at once (chalicelib/steps.py) sharing {LAMBDA['connections']} connections (so at most "
        f"{LAMBDA['connections'] * LAMBDA['s3_mb_per_s']:g} MB/s for any job; an assumption "
        f"kept modest); {LAMBDA['dispatch_s']:g} s from the SQS message to a running "
        f"handler (cold start with the layer) for each job; one SendMessage per step, "
        f"{LAMBDA['sqs_at_once']} at once (as the product sends them), "
        f"{LAMBDA['sqs_send_s']:g} s each. Measured and scaled linearly with length: "
        f"source {measured['source_mb_per_s'] * 8:.2f} Mbit/s (file size / length), audio-only "
        f"file {measured['audio_file_mb_per_s'] * 8 * 1000:.0f} kbit/s, m4a "
        f"{measured['audio_out_mb_per_s'] * 8 * 1000:.0f} kbit/s, rendition "
        f"{measured['rendition_mb_per_s'] * 8:.2f} Mbit/s; audio copy "
        f"{measured['audio_copy_s']:.2f} s, plan + split "
        f"{measured['plan_split_s']:.2f} s and assemble {measured['assemble_s']:.2f} s for "
        f"{media:.0f} s (1-worker run); audio encode {measured['audio_s_1']:.1f} s (1 vCPU) / "
        f"{measured['audio_s_2']:.1f} s (2 vCPUs) for {media:.0f} s. Pieces are "
        "length / concurrency long (at most 60 s, at least the 2 s keyframe spacing); more "
        "pieces than concurrency run in waves.",
        "",
        "Critical path: ready after = max(audio queued + audio job, plan job + waves x piece "
        "job) + assemble job, where T(MB) = request + MB / (min(parts, connections) x S3 MB/s) "
        "is one object's GET or PUT, N(files, MB) = ceil(files / "
        f"{TRANSFERS_AT_ONCE}) x request + MB / (connections x S3 MB/s) those of many, and",
        "",
        "- audio queued = dispatch + T(source MB) + audio copy + T(audio-only MB) + SendMessage "
        "time",
        "- plan job = audio queued + plan + split + PUT + send; PUT = N(pieces, source MB); "
        "send = ceil(pieces / 8) x SendMessage time",
        "- piece job = dispatch + T(source MB / pieces) + piece length x rate + T(rendition MB "
        "/ pieces)",
        "- audio job = dispatch + T(audio-only MB) + audio encode + T(m4a MB)",
        f"- assemble job = dispatch + ceil(pieces / {TRANSFERS_AT_ONCE}) x request (the heads) + "
        "T(m4a MB) + T(rendition MB / pieces) (the first piece) + max(assemble, 2 x rendition "
        "MB / (connections x S3 MB/s)) + request (the upload's completion): the copy overlaps "
        "the GETs and PUTs, which share the job's connections; assemble is the local "
        "assemble measured above (index, copy of every byte, probe), counted whole",
        "",
        "| recording | memory (vCPUs) | pieces at once | piece length | pieces (waves) | audio "
        "queued | plan job (of which PUT) | piece job | audio job | assemble job | ready after "
        "| goal | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['length'] // 60} min | {row['memory']:,} MB ({row['vcpus']}) | "
            f"{row['concurrency']} | {row['piece_s']:.0f} s | {row['pieces']} ({row['waves']}) | "
            f"{row['audio_queued']:.1f} s | {row['plan']:.1f} s ({row['put']:.1f} s) | {row['piece']:.1f} s | "
            f"{row['audio']:.1f} s | {row['join']:.1f} s | {row['total']:.1f} s | "
            f"{row['goal']:.0f} s | {'met' if row['met'] else '**missed**'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
