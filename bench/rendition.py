"""`python -m bench.rendition`: the H.264/AAC rendition made in pieces against one pass.

On the 10-minute 720p VP8/Opus recording (bench/work/rec-720p-600s-2500k.webm, made as
bench/recording.py makes it when absent; `--seconds 120` uses its first 2 minutes), in
one run:

- the single pass (chalicelib.media.rendition.render_single_pass): wall time;
- the pieces (render) with 1, 2 and N (= cpu count) workers: wall time, each step, the
  time of each piece's encode (median, p95, max) and the pieces' lengths; every output is
  checked against the single pass (frame count, duration, audio and video ending together);
- a few pieces encoded again on one core alone (the process pinned to CPU 0): the time a
  piece takes on 1 vCPU, which is what a Lambda of 1,769 MB has.

Then a model, not a measurement, of the rendition on Lambda with 20-60 pieces at once, for
a 10- and a 60-minute recording, from those times and the assumptions in LAMBDA below, and
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

RESULTS = ROOT / "bench" / "results"
SOURCE_SECONDS = 600
ONE_CORE_SAMPLE = 3  # pieces encoded again pinned to one core

# The model's assumptions. Lambda's CPU: "Lambda allocates CPU power in proportion to the
# amount of memory configured ... At 1,769 MB, a function has the equivalent of one vCPU"
# (AWS Lambda Developer Guide, "Configure Lambda function memory", section "Memory and
# computing power": https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
LAMBDA = {
    "memory_mb": {1: 1769, 2: 3538},  # vCPUs -> the memory that buys them
    "core_speed": 1.0,  # a Lambda vCPU as fast as one core here: an assumption, not measured
    "s3_mb_per_s": 80.0,  # one function's GET or PUT throughput (assumed; not published)
    "s3_request_s": 0.1,  # first byte of a GET or a PUT's answer (assumed)
    "dispatch_s": 1.0,  # SQS to a running handler, cold start with the layer (assumed)
    "source_mbit_per_s": 2.5,  # the recording's bitrate, as the benchmark's
    "concurrency": (20, 40, 60),
    "lengths": (600, 3600),
    "goals": {600: 30.0, 3600: 60.0},  # seconds after the original is ready
}




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
            f"{' '.join(version.split()[:3])}; load average at start {os.getloadavg()}")


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


def one_core_times(ffmpeg: Ffmpeg, source: str, pieces, work: str) -> list[tuple[float, float]]:
    """(piece seconds, encode seconds) of a few pieces encoded with this process (and so
    its ffmpeg) pinned to CPU 0."""
    chosen = sorted({0, len(pieces) // 2, max(0, len(pieces) - 2)})[:ONE_CORE_SAMPLE]
    sources = rendition.split_pieces(ffmpeg, source, pieces, work)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        times = []
        for index in chosen:
            started = time.monotonic()
            rendition.encode_piece(ffmpeg, sources[index], pieces[index],
                                   os.path.join(work, f"one-core-{index}.mp4"))
            times.append((pieces[index].seconds, time.monotonic() - started))
        return times
    finally:
        os.sched_setaffinity(0, before)


def model(measured: dict) -> list[dict]:
    """The rendition on Lambda, per recording length, concurrency and memory."""
    mb = LAMBDA["s3_mb_per_s"]
    request = LAMBDA["s3_request_s"]
    dispatch = LAMBDA["dispatch_s"]
    rows = []
    for length in LAMBDA["lengths"]:
        scale = length / measured["seconds"]
        source_mb = length * LAMBDA["source_mbit_per_s"] / 8
        rendition_mb = measured["rendition_mb_per_s"] * length
        audio_mb = 128 / 8 / 1000 * length
        for vcpus, rate_key in ((1, "rate_1"), (2, "rate_2")):
            rate = measured[rate_key] / LAMBDA["core_speed"]
            for concurrency in LAMBDA["concurrency"]:
                piece_s = min(60.0, max(measured["keyframe_s"], length / concurrency))
                count = math.ceil(length / piece_s)
                waves = math.ceil(count / concurrency)
                # plan + split: read the source, cut it, send the pieces back to S3
                split = (dispatch + request + source_mb / mb + measured["plan_split_s"] * scale
                         + request + source_mb / mb)
                piece = (dispatch + request + source_mb / count / mb + piece_s * rate
                         + request + rendition_mb / count / mb)
                audio = (dispatch + request + source_mb / mb + measured["audio_s"] * scale
                         + request + audio_mb / mb)
                join = (dispatch + request * 2 + (rendition_mb + audio_mb) / mb
                        + measured["assemble_s"] * scale + request + rendition_mb / mb)
                total = max(split + waves * piece, audio) + join
                rows.append({"length": length, "vcpus": vcpus, "memory": LAMBDA["memory_mb"][vcpus],
                             "concurrency": concurrency, "piece_s": piece_s, "pieces": count,
                             "waves": waves, "split": split, "piece": piece, "audio": audio,
                             "join": join, "total": total,
                             "goal": LAMBDA["goals"][length],
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
    began = time.monotonic()
    source = str(source_for(args.seconds, log))
    info = ffmpeg.probe(source)
    log(f"source {Path(source).name}: {info.duration:.1f} s, {os.path.getsize(source) / 1e6:.1f} MB, "
        f"{info.describe()}")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(dir=WORK) as work:
        single_out = os.path.join(work, "single.mp4")
        log("single pass ...")
        single_s = rendition.render_single_pass(ffmpeg, source, single_out)
        single_frames, single_video_end, single_audio_end = stream_ends(ffmpeg, single_out)
        log(f"  {single_s:.1f} s, {single_frames} frames")
        runs = []
        for workers in sorted({1, 2, cores}):
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
        one_core = one_core_times(ffmpeg, source, pieces, work)
        single_size = os.path.getsize(single_out)
    wall = time.monotonic() - began
    first = runs[0]["report"]  # 1 worker: each step alone on the machine
    media = info.duration
    keys = [p.start for p in pieces]
    measured = {
        "seconds": media,
        "rate_1": sum(t for _, t in one_core) / sum(s for s, _ in one_core),
        "rate_2": sum(first.piece_seconds) / sum(p.seconds for p in pieces),
        "plan_split_s": first.plan_seconds + first.split_seconds,
        "audio_s": first.audio_seconds,
        "assemble_s": first.assemble_seconds,
        "rendition_mb_per_s": runs[0]["size"] / 1e6 / media,
        "keyframe_s": 2.0,
    }
    rows = model(measured)
    text = report_text(args, started_at, host, source, info, single_s, single_frames,
                       single_video_end - single_audio_end, single_size, runs, one_core,
                       measured, rows, wall, keys)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rendition-latest.md").write_text(text)
    print(text)


def report_text(args, started_at, host, source, info, single_s, single_frames, single_av,
                single_size, runs, one_core, measured, rows, wall, keys) -> str:
    command = "python -m bench.rendition" + (f" --seconds {args.seconds}" if args.seconds else "")
    dirty = len(git("status", "--porcelain").splitlines())
    lines = [
        "# Rendition: H.264/AAC MP4 in pieces against one pass",
        "",
        f"- date: {started_at}; commit: `{git('rev-parse', 'HEAD')}` ({dirty} uncommitted paths "
        "in the tree, this work among them)",
        f"- machine: {host}",
        f"- command: `{command}` (target {args.target:g} s, max {args.max:g} s); total wall time "
        f"{wall:.0f} s",
        f"- source: {Path(source).name}, {info.duration:.1f} s, "
        f"{os.path.getsize(source) / 1e6:.1f} MB, {info.describe()}",
        f"- encoder: {rendition.VIDEO_OPTIONS['c:v']} {rendition.VIDEO_OPTIONS['preset']} CRF "
        f"{rendition.VIDEO_OPTIONS['crf']}, High@4.1 yuv420p; AAC 128k; each ffmpeg uses "
        "every core it sees (x264's own threads)",
        "",
        "## Measured on this machine",
        "",
        "| run | wall time | speed-up vs single pass | pieces | piece encode median / p95 / max | "
        "piece length median / max | split + plan | audio pass | assemble | frames | "
        "duration | video end - audio end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| single pass | {single_s:.1f} s | 1.00x | - | - | - | - | - | - | {single_frames} | "
        f"{info.duration:.2f} s (source) | {single_av * 1000:+.0f} ms |",
    ]
    for run in runs:
        report = run["report"]
        times = report.piece_seconds
        lengths = [p.seconds for p in report.pieces]
        lines.append(
            f"| pieces, {run['workers']} worker{'s' if run['workers'] > 1 else ''}"
            f"{' (= cpu count)' if run['workers'] == os.cpu_count() else ''} | "
            f"{report.total_seconds:.1f} s | {single_s / report.total_seconds:.2f}x | "
            f"{len(report.pieces)} | {statistics.median(times):.1f} / {percentile(times, 0.95):.1f} / "
            f"{max(times):.1f} s | {statistics.median(lengths):.1f} / {max(lengths):.1f} s | "
            f"{report.plan_seconds + report.split_seconds:.2f} s | {report.audio_seconds:.1f} s | "
            f"{report.assemble_seconds:.2f} s | {run['frames']}"
            f"{' (same)' if run['frames'] == single_frames else ' (**differs**)'} | "
            f"{run['duration']:.2f} s | {run['av'] * 1000:+.0f} ms |")
    notes = [p for p in runs[0]["report"].pieces if p.note]
    lines += [
        "",
        f"- one core alone (process pinned to CPU 0), pieces "
        + ", ".join(f"{s:.1f} s in {t:.1f} s" for s, t in one_core)
        + f": {measured['rate_1']:.2f} s of encode per second of video (1 vCPU); with both "
        f"cores and no other job (1 worker): {measured['rate_2']:.2f} s per second (2 vCPUs)",
        f"- sizes: single pass {single_size / 1e6:.1f} MB, pieces {runs[0]['size'] / 1e6:.1f} MB",
        f"- keyframes of the source every 2 s (ffmpeg -g 60 at 30 fps); the plan's cuts: "
        + ", ".join(f"{k:.0f}" for k in keys) + " s"
        + (f"; pieces longer than max: {len(notes)}" if notes else "; no piece longer than max"),
        "",
        "## Model: the rendition on Lambda, 20-60 pieces at once",
        "",
        "Calculated, not measured. Per-piece encode time = piece length x the rate measured "
        "above (1 vCPU: the one-core rate; 2 vCPUs: the 1-worker rate), a Lambda vCPU assumed "
        f"as fast as a core here (x{LAMBDA['core_speed']:g}). Memory: {LAMBDA['memory_mb'][1]:,} MB "
        f"gives 1 vCPU and {LAMBDA['memory_mb'][2]:,} MB 2 (AWS Lambda Developer Guide, "
        "\"Memory and computing power\": \"At 1,769 MB, a function has the equivalent of one "
        "vCPU\", https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). "
        f"S3: {LAMBDA['s3_mb_per_s']:g} MB/s per function for a GET or PUT plus "
        f"{LAMBDA['s3_request_s']:g} s per request; {LAMBDA['dispatch_s']:g} s from the SQS "
        "message to a running handler (cold start with the layer) for each job. Source at "
        f"{LAMBDA['source_mbit_per_s']:g} Mbit/s; rendition {measured['rendition_mb_per_s'] * 8:.2f} "
        "Mbit/s (measured); plan + split, the audio pass and assemble scaled linearly from "
        f"the measured {measured['plan_split_s']:.2f} s, {measured['audio_s']:.1f} s and "
        f"{measured['assemble_s']:.2f} s for {measured['seconds']:.0f} s. Pieces are "
        "length / concurrency long (at most 60 s, at least the 2 s keyframe spacing); more "
        "pieces than concurrency run in waves.",
        "",
        "Critical path: max(split job + waves x piece job, audio job) + assemble job. Split "
        "job: dispatch, GET source, plan + split, PUT pieces. Piece job: dispatch, GET piece, "
        "encode, PUT. Audio job: dispatch, GET source, AAC pass, PUT. Assemble: dispatch, GET "
        "pieces + audio, concat, PUT.",
        "",
        "| recording | memory (vCPUs) | pieces at once | piece length | pieces (waves) | split job | "
        "piece job | audio job | assemble job | ready after | goal | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['length'] // 60} min | {row['memory']:,} MB ({row['vcpus']}) | "
            f"{row['concurrency']} | {row['piece_s']:.0f} s | {row['pieces']} ({row['waves']}) | "
            f"{row['split']:.1f} s | {row['piece']:.1f} s | {row['audio']:.1f} s | "
            f"{row['join']:.1f} s | {row['total']:.1f} s | {row['goal']:.0f} s | "
            f"{'met' if row['met'] else '**missed**'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
