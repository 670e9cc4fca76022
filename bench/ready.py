"""`python -m bench.ready [--quick]`: time to ready and bytes moved by the final join, under
an S3 latency model (bench.s3_latency), for 1-, 10- and 60-minute 720p ~2.5 Mbit/s
recordings in the two shapes browsers record: WebM (VP8/Opus, unseekable, as Chromium's
MediaRecorder writes it) and fragmented MP4 (H.264/AAC, keyframe every second,
`frag_keyframe+empty_moov+default_base_moof`: Safari's shape). Each is joined twice: by
the product's own join job (the segment join first: method `segments` when it takes the
recording) and by a join job built here without the segment join, so that the chunks go
through ffmpeg (method `remux`): the comparison.

What one run does, in process (the service built with chalicelib.wiring against a moto
server in a child process, as chalice local and the worker build it):
  1. untimed, S3 straight to the emulator: a new video; every chunk but the last appended
     (300 KiB each, cut at arbitrary byte offsets like bench.recording), and the non-urgent
     join job run (`Joiner.run(urgent=False)`) as the waiting join runs while a recording
     goes on: it folds what has arrived into segments (chalicelib.media.fold) and puts
     itself back on the queue. It wakes about every 2 s (JOIN_DELAY_SECONDS), every second
     chunk of a 1 s timeslice, folds once 5 MiB have arrived since the last segment, and
     extends the last segment with what came after it; the wake-ups that find 5 MiB are run
     here, and the last one before the last chunk (the earlier extensions are replaced).
     The ffmpeg comparison skips the folding: the chunk join reads the chunks whatever
     was folded.
  2. the service rebuilt with AWS_ENDPOINT_URL_S3 pointing at the latency proxy (DynamoDB
     and SQS still straight to the emulator); the last chunk appended through it;
  3. TIMED: from the moment that last append has returned to the moment the urgent join
     (`Joiner.run(urgent=True)`, the join a GET asks for; no finalize) returns `joined`,
     i.e. the video is recorded ready in the catalog. It covers the final fold of the
     chunks not yet folded, the new head, the S3 composition (UploadPartCopy of every
     segment + CompleteMultipartUpload), or the ffmpeg path's reads, remux and upload;
     the checks (probe and decodes) and the poster. It does not cover the SQS delivery
     and Lambda start between the append and the join (a join asked for by a GET is
     urgent: it does not wait JOIN_DELAY_SECONDS), nor removing the chunks after a
     finalize (after ready).
The bytes are the store's own counts for that join (chalicelib.transfers: read and written
through the process, copied by S3); the proxy counts the S3 requests by operation and what
the emulator took beyond the model (its floor). Medians of --runs runs (1-, 10-minute) and
--long-runs runs (60-minute). Nothing is asserted. Writes bench/results/ready-latest.md and
the section between `<!-- ready:begin -->` and `<!-- ready:end -->` of
bench/results/latest.md.
"""
import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import s3_latency  # noqa: E402
from bench.recording import CHUNK_BYTES, _write_from_pipe, chunks_of, ffmpeg_binary  # noqa: E402
from bench.provenance import git

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
BEGIN, END = "<!-- ready:begin -->", "<!-- ready:end -->"
FORMATS = ("webm", "fmp4")
METHODS = ("segments", "ffmpeg")
FOLD_EVERY = 2  # appends between two runs of the waiting join (about 2 s of a 1 s timeslice)
SEGMENT_BYTES = 5 * 1024 * 1024  # chalicelib.media.fold's: a fold needs this much new
GOAL_READY_S = 2.0
GOAL_RATIO = 1.5
GOAL_MOVED_BYTES = 15_000_000


def log(message: str) -> None:
    print(f"[ready {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- recordings (cached in bench/work) ---

def _ffmpeg(*args: str) -> list[str]:
    return [ffmpeg_binary(), "-hide_banner", "-nostats", "-loglevel", "error", *args]


_FMP4_OUT = ("-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", "pipe:1")


def _webm_10min() -> Path:
    reused = WORK / "rec-720p-600s-2500k.webm"  # what `make bench` makes
    if reused.exists():
        return reused
    from bench import recording
    return recording.recording(600, log=log)


def _fmp4_10min() -> Path:
    path = WORK / "ready-fmp4-720p-600s-2500k.mp4"
    if path.exists():
        return path
    log(f"encoding {path.name} (libx264 ultrafast, noise; about 1.5 minutes on 2 cores) ...")
    started = time.monotonic()
    _write_from_pipe(_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "600",
        "-vf", "noise=alls=12:allf=t",  # noise, so that the bitrate is a camera's, not a test card's
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k",
        "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-threads", "2",
        "-c:a", "aac", "-b:a", "96k", *_FMP4_OUT), path, timeout=3600)
    log(f"  encoded in {time.monotonic() - started:.0f} s, {path.stat().st_size / 1e6:.1f} MB")
    return path


def _cut(source: Path, seconds: int, fmt: str) -> Path:
    path = WORK / f"ready-{fmt}-720p-{seconds}s-2500k.{'webm' if fmt == 'webm' else 'mp4'}"
    if not path.exists():
        log(f"cutting {path.name} from {source.name} (stream copy to a pipe) ...")
        out = ("-f", "webm", "pipe:1") if fmt == "webm" else _FMP4_OUT
        _write_from_pipe(_ffmpeg("-i", str(source), "-t", str(seconds), "-map", "0",
                                 "-c", "copy", *out), path, timeout=600)
    return path


def _concatenated(source: Path, times: int, fmt: str) -> Path:
    seconds = 600 * times
    path = WORK / f"ready-{fmt}-720p-{seconds}s-2500k.{'webm' if fmt == 'webm' else 'mp4'}"
    if not path.exists():
        log(f"concatenating {path.name}: {times} x {source.name} (concat demuxer, -c copy, to a pipe) ...")
        listing = WORK / f"ready-{fmt}-concat.txt"
        listing.write_text("".join(f"file '{source}'\n" for _ in range(times)))
        out = ("-f", "webm", "pipe:1") if fmt == "webm" else _FMP4_OUT
        _write_from_pipe(_ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0",
                                 "-c", "copy", *out), path, timeout=1800)
        listing.unlink()
    return path


def recording_for(fmt: str, seconds: int) -> Path:
    ten = _webm_10min() if fmt == "webm" else _fmp4_10min()
    if seconds == 600:
        return ten
    if seconds < 600:
        return _cut(ten, seconds, fmt)
    assert seconds % 600 == 0, "longer recordings are whole multiples of 10 minutes"
    return _concatenated(ten, seconds // 600, fmt)


# --- the stack: moto in a child process, the service in this one ---

class Bench:
    def __init__(self, model: s3_latency.LatencyModel):
        self.model = model
        self.emulator: subprocess.Popen | None = None
        self.proxy: s3_latency.LatencyProxy | None = None
        self.lines: list[dict] = []

    def __enter__(self) -> "Bench":
        # moto in its own process: its copying and hashing do not take this one's GIL.
        code = ("import sys; sys.path.insert(0, %r)\n"
                "from devtools.emulator import Emulator\n"
                "e = Emulator().start(); print(e.url, flush=True); sys.stdin.read()") % str(ROOT)
        self.emulator = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        emulator_url = self.emulator.stdout.readline().strip()
        assert emulator_url.startswith("http://127.0.0.1:"), emulator_url
        self.emulator_url = emulator_url

        from devtools.emulator import provision, use_fake_credentials
        from devtools.server import stage_environment
        use_fake_credentials()
        os.environ.update(stage_environment())
        os.environ["AWS_ENDPOINT_URL"] = emulator_url
        os.environ.pop("AWS_ENDPOINT_URL_S3", None)
        # The waiting join folds rather than joins while appends keep coming.
        os.environ["JOIN_DELAY_SECONDS"] = "600"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        (WORK / "tmp").mkdir(parents=True, exist_ok=True)
        os.environ["WORK_DIR"] = str(WORK / "tmp")
        from chalicelib import aws, observability, wiring
        from chalicelib.joiner import Joiner
        from chalicelib.media.segment_join import SegmentJoin
        from chalicelib.settings import get_settings
        self._quiet_logs(observability.SERVICE)
        get_settings.cache_clear()
        aws.reset()
        provision(get_settings(), emulator_url)
        self.direct = wiring.build(get_settings())

        self.proxy = s3_latency.LatencyProxy(emulator_url, self.model).start()
        # S3 alone through the proxy: the endpoint variables are all the service needs.
        os.environ["AWS_ENDPOINT_URL_S3"] = self.proxy.url
        get_settings.cache_clear()
        aws.reset()
        self.modelled = wiring.build(get_settings())
        for services, url in ((self.direct, emulator_url), (self.modelled, self.proxy.url)):
            endpoint = services.backend.store.client.meta.endpoint_url
            assert endpoint == url, f"the S3 client went to {endpoint}, not {url}"
        m = self.modelled
        # The comparison: the same join job without the segment join, so the chunk join
        # (ffmpeg) takes every recording. Built here; the product's wiring is untouched.
        strategies = [s for s in wiring.join_strategies(m.settings, m.backend, m.joiner.folder,
                                                        m.joiner.ffmpeg, m.reencodes)
                      if not isinstance(s, SegmentJoin)]
        self.ffmpeg_joiner = Joiner(m.settings, m.backend, strategies, m.joiner.folder,
                                    m.joiner.ffmpeg)
        return self

    def _quiet_logs(self, service: str) -> None:
        """The service's JSON lines kept here (join timings, joined, not folding), not printed."""
        lines = self.lines

        class Keep(logging.Handler):
            def emit(self, record):
                try:
                    lines.append(json.loads(self.format(record)))
                except ValueError:
                    pass

        from chalicelib import observability
        target = logging.getLogger(service)
        for handler in target.handlers:
            handler.setLevel(logging.WARNING)
        keep = Keep()
        keep.setFormatter(observability.logger.registered_formatter)
        target.addHandler(keep)

    def __exit__(self, *exc) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.emulator is not None:
            with contextlib.suppress(Exception):
                self.emulator.stdin.close()  # the child exits when its stdin closes
            try:
                self.emulator.wait(30)
            except subprocess.TimeoutExpired:
                self.emulator.kill()
                self.emulator.wait(10)

    def run(self, chunks: list[bytes], method: str) -> dict:
        from chalicelib.models import JoinOutcome
        direct, modelled = self.direct, self.modelled
        created = direct.videos.create()
        video_id, token = created.view.video.video_id, created.upload_token
        fold = method == "segments"
        started = time.perf_counter()
        outcomes: dict[str, int] = {}
        appended = segmented = 0
        for n, chunk in enumerate(chunks[:-1], start=1):
            direct.videos.append(video_id, token, chunk)
            appended += len(chunk)
            # A waiting join wakes every FOLD_EVERY appends. One that finds a segment's worth
            # not yet folded folds it; the others only extend the last segment with what
            # came after it (Folder.fold), which matters for the final join only at the last
            # wake-up: so those wake-ups are run, and the last one before the last chunk.
            last_wake = n + FOLD_EVERY >= len(chunks)
            if fold and n % FOLD_EVERY == 0 and (appended - segmented >= SEGMENT_BYTES or last_wake):
                outcome = direct.joiner.run(video_id, urgent=False).value
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                now = direct.backend.catalog.get(video_id)
                segmented = now.segmented_bytes
                fold = now.segments_off is None  # not foldable: the wake-ups fold nothing
        seeded = time.perf_counter() - started
        before = direct.backend.catalog.get(video_id)
        store = modelled.backend.store
        t_append = time.perf_counter()
        modelled.videos.append(video_id, token, chunks[-1])
        t0 = time.perf_counter()
        self.proxy.reset()
        moved_before = store.transfers.snapshot()
        first_line = len(self.lines)
        joiner = modelled.joiner if method == "segments" else self.ffmpeg_joiner
        outcome = joiner.run(video_id, urgent=True)
        t1 = time.perf_counter()
        moved = store.transfers.snapshot() - moved_before
        requests = self.proxy.stats()
        video = direct.backend.catalog.get(video_id)
        lines = self.lines[first_line:]
        timings = next((l.get("seconds") for l in lines if l.get("message") == "join timings"), None)
        not_folding = next((l.get("reason") for l in self.lines
                            if l.get("message") == "not folding" and l.get("video_id") == video_id), None)
        result = {
            "video_id": video_id, "chunks": len(chunks), "bytes": sum(map(len, chunks)),
            "seed_s": seeded, "waiting_join_outcomes": outcomes,
            "segments_before_last_append": before.segment_count,
            "segmented_bytes_before_last_append": before.segmented_bytes,
            "not_folding": not_folding or before.segments_off,
            "last_append_s": t0 - t_append, "outcome": outcome.value,
            "time_to_ready_s": t1 - t0 if outcome is JoinOutcome.JOINED else None,
            "join_method": video.media.join_method.value if video and video.media else None,
            "duration_s": video.media.duration if video and video.media else None,
            "compiled_bytes": video.media.byte_size if video and video.media else None,
            "error": video.error if video else None,
            "read": moved.read, "written": moved.written, "copied_in_s3": moved.copied_in_s3,
            "join_timings_s": timings,
            "s3_requests": {op: s.requests for op, s in sorted(requests.items())},
            "s3_modelled_s": {op: round(s.modelled_s, 3) for op, s in sorted(requests.items())},
            "emulator_excess_s": {op: round(s.excess_s, 3) for op, s in sorted(requests.items())
                                  if s.excess_s >= 0.001},
        }
        direct.videos.delete(video_id, token)  # frees the emulator's memory for the next run
        return result


# --- report ---

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mb(n) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def verdict(ok) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def summarize(results: list[dict]) -> list[dict]:
    rows = []
    keys = []
    for r in results:
        key = (r["format"], r["seconds"], r["method"])
        if key not in keys:
            keys.append(key)
    for fmt, seconds, method in keys:
        runs = [r for r in results if (r["format"], r["seconds"], r["method"]) == (fmt, seconds, method)]
        ok = [r for r in runs if r.get("time_to_ready_s") is not None]
        for r in ok:  # CompleteMultipartUpload runs alone at the end: its excess is serial
            r["ready_less_complete_excess_s"] = r["time_to_ready_s"] - r.get(
                "emulator_excess_s", {}).get("CompleteMultipartUpload", 0.0)
        row = {"format": fmt, "seconds": seconds, "method": method, "n": len(ok), "tried": len(runs),
               "ready_s": median([r["time_to_ready_s"] for r in ok]),
               "adjusted_s": median([r["ready_less_complete_excess_s"] for r in ok]),
               "runs_s": [round(r["time_to_ready_s"], 2) for r in ok],
               "used": sorted({r.get("join_method") or r.get("outcome") or "error" for r in runs}),
               "read": median([r["read"] for r in ok]), "written": median([r["written"] for r in ok]),
               "copied": median([r["copied_in_s3"] for r in ok]),
               "bytes": runs[0].get("bytes"), "chunks": runs[0].get("chunks"),
               "requests": ok[-1]["s3_requests"] if ok else {},
               "excess": ok[-1]["emulator_excess_s"] if ok else {},
               "timings": ok[-1]["join_timings_s"] if ok else None,
               "not_folding": runs[0].get("not_folding"),
               "errors": [r.get("exception") or r.get("error") for r in runs
                          if r.get("exception") or r.get("error")]}
        row["moved"] = None if row["read"] is None else row["read"] + row["written"]
        rows.append(row)
    return rows


def _length(seconds: int) -> str:
    return f"{seconds // 60} min"


def markdown(meta: dict, rows: list[dict]) -> str:
    out = ["## Time to ready under an S3 latency model (`python -m bench.ready`)", ""]
    out += [f"- date: {meta['date']}; commit: `{meta['commit']}` ({meta['dirty']} uncommitted paths in the tree)",
            f"- machine: {meta['machine']}",
            f"- command: `{meta['command']}` ({meta['mode']}; {meta['elapsed_s']:.0f} s in all)",
            "- S3 latency model (bench/s3_latency.py; each S3 request of the measured join is held "
            "for max(modelled, the emulator's own time)):"]
    for name, item in meta["model"].items():
        out.append(f"  - `{name}` = {item['value']:g}: {item['source']}")
    out += ["- time to ready: from the return of the last append (through the model) to the "
            "urgent join (`Joiner.run(urgent=True)`, what a GET asks for; no finalize) returning "
            "`joined`, in process; the chunks before it were appended, and folded by the waiting "
            "join (`Joiner.run(urgent=False)`, run at each wake-up, every 2nd append, that "
            "finds 5 MiB not yet folded, and at the last wake-up before the last chunk, which "
            "extends the last segment), without the model and untimed. Not included: SQS "
            "delivery and the Lambda start before the join",
            "- bytes: the final join's own counts (chalicelib.transfers): read + written through "
            "the process (\"moved\"), and copied by S3 (UploadPartCopy, never through the process)",
            "- `ffmpeg` rows: the join job built without the segment join (the comparison; the "
            "product's wiring is unchanged); `segments` rows: the product's join job as it is",
            "- S3 requests: those of the final join (poster included) as the proxy counted them; "
            "the emulator's time beyond the model is summed over requests (UploadPartCopy runs up "
            "to 32 at a time, mostly while recording, into the draft; CompleteMultipartUpload alone on the critical path: moto concatenates "
            "the whole object in Python there, so the time less that excess is what the model "
            "alone would give for it; UploadPartCopy's excess overlaps and is not subtracted)",
            f"- recordings: 720p, ~2.5 Mbit/s, chunks of {CHUNK_BYTES} bytes; "
            + "; ".join(f"{k}: {v}" for k, v in meta["recordings"].items()),
            ""]
    out += ["| recording | method asked | join method used | n | time to ready, median (runs) | "
            "< 2 s | less the emulator's CompleteMultipartUpload excess | moved (read + written) MB | copied in S3 MB | < 15 MB moved | S3 requests of the join | "
            "emulator beyond the model, s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ready = "-" if row["ready_s"] is None else (
            f"{row['ready_s']:.2f} s ({', '.join(f'{x:.2f}' for x in row['runs_s'])})")
        moved_goal = None
        if row["seconds"] >= 600 and row["moved"] is not None:
            moved_goal = row["moved"] < GOAL_MOVED_BYTES
        adjusted = "-" if row["adjusted_s"] is None else f"{row['adjusted_s']:.2f} s"
        moved = "-" if row["moved"] is None else f"{mb(row['moved'])} ({mb(row['read'])} + {mb(row['written'])})"
        reqs = ", ".join(f"{op} {n}" for op, n in row["requests"].items())
        excess = ", ".join(f"{op} {s:.2f}" for op, s in row["excess"].items()) or "0"
        used = ", ".join(row["used"])
        if row["n"] < row["tried"]:
            used += f" ({row['tried'] - row['n']} of {row['tried']} runs not joined: {row['errors'][:1]})"
        out.append(f"| {_length(row['seconds'])} {row['format']} ({mb(row['bytes'])} MB, {row['chunks']} chunks) "
                   f"| {row['method']} | {used} | {row['n']} | {ready} "
                   f"| {verdict(None if row['ready_s'] is None else row['ready_s'] < GOAL_READY_S)} "
                   f"| {adjusted} "
                   f"| {moved} | {mb(row['copied'])} | {verdict(moved_goal)} | {reqs} | {excess} |")
    out += ["", "| format | method asked | time to ready 60 min / 1 min | <= 1.5x | the same, less the "
            "emulator's Complete excess |", "|---|---|---|---|---|"]
    for fmt in FORMATS:
        for method in METHODS:
            by = {r["seconds"]: r for r in rows if r["format"] == fmt and r["method"] == method}
            short, long_ = by.get(60), by.get(3600)
            if short and long_ and short["ready_s"] and long_["ready_s"]:
                ratio = long_["ready_s"] / short["ready_s"]
                adjusted = long_["adjusted_s"] / short["adjusted_s"]
                out.append(f"| {fmt} | {method} | {ratio:.2f} ({long_['ready_s']:.2f} / {short['ready_s']:.2f} s) "
                           f"| {verdict(ratio <= GOAL_RATIO)} | {adjusted:.2f} |")
            elif short or long_:
                out.append(f"| {fmt} | {method} | not measured (needs the 1- and 60-minute runs) | | |")
    out += ["", "Where the join's time went (the `join timings` log line of the last run: "
            "`join` prepares (folds, reads, remuxes), `upload`/`check` run together in `publish`):", ""]
    for row in rows:
        if row["timings"]:
            t = ", ".join(f"{k} {v:.2f} s" for k, v in row["timings"].items())
            note = f"; not folded: {row['not_folding']}" if row["not_folding"] else ""
            out.append(f"- {_length(row['seconds'])} {row['format']}, {row['method']}: {t}{note}")
    out.append("")
    return "\n".join(out)


def write_results(table: str, meta: dict, results: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ready-latest.md").write_text(table)
    (WORK / "ready-latest.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=1,
                                                       default=str))
    latest = RESULTS / "latest.md"
    text = latest.read_text() if latest.exists() else ""
    section = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    latest.write_text(text)


# --- main ---



def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ffmpeg = subprocess.run([ffmpeg_binary(), "-version"], capture_output=True,
                            text=True).stdout.split("\n")[0]
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {ffmpeg}; "
            f"load average at start {tuple(round(x, 2) for x in os.getloadavg())}")


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ready", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1- and 10-minute recordings only")
    p.add_argument("--minutes", help="comma-separated recording lengths (default 1,10,60; --quick 1,10)")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--runs", type=int, default=3, help="runs of each 1- and 10-minute case (median)")
    p.add_argument("--long-runs", type=int, default=1, help="runs of each 60-minute case")
    p.add_argument("--recordings-only", action="store_true", help="make the recordings and stop")
    p.add_argument("--no-write", action="store_true", help="print the table, write no file")
    p.add_argument("--from-json", type=Path,
                   help="render the table again from a run's JSON (bench/work/ready-latest.json)")
    s3_latency.add_model_arguments(p)
    args = p.parse_args(argv)
    args.minutes = [int(x) for x in (args.minutes or ("1,10" if args.quick else "1,10,60")).split(",")]
    args.formats = args.formats.split(",")
    args.methods = args.methods.split(",")
    return args


def main(argv=None) -> None:
    args = options(argv)
    if args.from_json:
        stored = json.loads(args.from_json.read_text())
        table = markdown(stored["meta"], summarize(stored["runs"]))
        print(table)
        if not args.no_write:
            write_results(table, stored["meta"], stored["runs"])
        return
    os.environ.setdefault("FFMPEG_BINARY", ffmpeg_binary())
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    command = "python -m bench.ready " + " ".join(sys.argv[1:] if argv is None else argv)
    recordings = {(fmt, m): recording_for(fmt, m * 60) for m in args.minutes for fmt in args.formats}
    if args.recordings_only:
        for path in recordings.values():
            print(path)
        return
    model = s3_latency.model_from(args)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git("rev-parse", "HEAD"), "dirty": len(git("status", "--porcelain").splitlines()),
            "machine": machine(), "command": command.strip(), "mode": "quick" if args.quick else "full",
            "model": model.describe(),
            "recordings": {path.name: f"{path.stat().st_size / 1e6:.1f} MB"
                           for path in dict.fromkeys(recordings.values())}}
    results: list[dict] = []
    # stdout: only the table. The service's metrics (EMF lines, printed by powertools every
    # 100 values, disabled or not) go nowhere.
    with Bench(model) as bench, open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        for minutes in args.minutes:
            for fmt in args.formats:
                path = recordings[(fmt, minutes)]
                chunks = chunks_of(path)
                for method in args.methods:
                    runs = args.long_runs if minutes >= 60 else args.runs
                    for run in range(runs):
                        log(f"{minutes} min {fmt}, {method}, run {run + 1}/{runs}: "
                            f"{len(chunks)} chunks ...")
                        try:
                            r = bench.run(chunks, method)
                        except Exception as error:  # reported in the table, the others go on
                            log(f"  failed: {error!r}")
                            r = {"exception": repr(error), "chunks": len(chunks),
                                 "bytes": sum(map(len, chunks))}
                        r.update(format=fmt, seconds=minutes * 60, method=method, run=run + 1)
                        results.append(r)
                        if r.get("time_to_ready_s") is not None:
                            log(f"  {r['join_method']}: ready {r['time_to_ready_s']:.2f} s after the "
                                f"last append; read {mb(r['read'])} MB, written {mb(r['written'])} MB, "
                                f"copied in S3 {mb(r['copied_in_s3'])} MB (seeded in {r['seed_s']:.0f} s)")
                        elif "exception" not in r:
                            log(f"  not joined: {r['outcome']} {r.get('error')}")
                del chunks
    meta["elapsed_s"] = time.monotonic() - started
    table = markdown(meta, summarize(results))
    print(table)
    if not args.no_write:
        write_results(table, meta, results)
        log(f"wrote {RESULTS / 'ready-latest.md'}, the ready section of {RESULTS / 'latest.md'} "
            f"and {WORK / 'ready-latest.json'} in {meta['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
