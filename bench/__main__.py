"""`python -m bench [--quick] [...]`: the video-chunk API's benchmark.

Measures, against the real local stack (devtools.server in a subprocess: moto + chalice
local + join worker, with the local stage's settings as under `make run`):
  1. append flatness: latency of the first and last 100 of N appends to one video, and
     the AWS calls each append makes (in-process, counted with botocore hooks);
  2. time to ready: from the last append of a whole recording until GET answers 302,
     against a plain `ffmpeg -c copy` remux and one S3 PUT of the same bytes;
  3. memory: peak RSS of a join (Python + ffmpeg) for two recording sizes;
  4. concurrency: appends per second with 1, 8 and 32 clients on distinct videos.
Prints a Markdown table, writes it to bench/results/latest.md and the raw numbers to
bench/results/<date>-<shortcommit>.json. It never asserts a timing.
"""
import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from bench.provenance import git

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run (about 2 minutes once recordings are cached)")
    p.add_argument("--runs", type=int, help="repetitions of the HTTP scenarios (median reported)")
    p.add_argument("--appends", type=int, help="appends in the flatness scenario")
    p.add_argument("--record-seconds", type=int, help="length of the time-to-ready recording")
    p.add_argument("--memory-mb", help="comma-separated recording sizes for the memory scenario")
    p.add_argument("--memory-runs", type=int, help="repetitions of each memory join")
    p.add_argument("--clients", default="1,8,32", help="concurrency levels")
    p.add_argument("--per-client", type=int, help="appends per client in the concurrency scenario")
    p.add_argument("--call-appends", type=int, help="in-process appends for the call count")
    p.add_argument("--only", default="calls,flatness,concurrency,ttr,memory",
                   help="comma-separated subset of scenarios")
    p.add_argument("--diagnose", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the flatness appends once with joins deferred "
                        "(JOIN_DELAY_SECONDS=900), to separate the append path from the "
                        "background joins (default: on for full runs)")
    p.add_argument("--profile", action="store_true",
                   help="also cProfile one memory join (bench/work/join.prof)")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = dict(runs=1 if quick else 3, appends=200 if quick else 1000,
                    record_seconds=60 if quick else 600,
                    memory_mb="20,60" if quick else "100,500", memory_runs=1 if quick else 2,
                    per_client=8 if quick else 40, call_appends=100 if quick else 1000)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.diagnose is None:
        args.diagnose = not quick
    args.only = set(args.only.split(","))
    args.clients = [int(x) for x in args.clients.split(",")]
    args.memory_mb = [int(x) for x in args.memory_mb.split(",")]
    return args




def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None) -> None:
    args = options(argv)
    # A terminated benchmark still stops its stack (the `with Stack` blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("FFMPEG_BINARY", str(ROOT / "layers" / "ffmpeg" / "bin" / "ffmpeg"))
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    from bench import recording
    from bench.recording import CHUNK_BYTES, chunks_of
    from devtools.server import stage_environment

    commit = git("rev-parse", "HEAD")
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit, "dirty_files": len(git("status", "--porcelain").splitlines()),
            "cores": os.cpu_count(), "python": platform.python_version(),
            "mode": "quick" if args.quick else "full", "runs": args.runs,
            "chunk_bytes": CHUNK_BYTES,
            # The HTTP scenarios run with the local stage's, as `make run` does.
            "join_delay_seconds": int(stage_environment()["JOIN_DELAY_SECONDS"]),
            "load_average_at_start": os.getloadavg(),
            "ffmpeg": subprocess.run([os.environ["FFMPEG_BINARY"], "-version"], capture_output=True,
                                     text=True).stdout.split("\n")[0]}
    args_record = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()}
    raw = {"meta": meta, "args": args_record, "runs": [], "calls": None, "memory": []}
    started = time.monotonic()

    # --- recordings (cached) ---
    record = recording.recording(args.record_seconds, log=log)
    flat_source = recording.sized_stream(record, args.appends * CHUNK_BYTES, log=log)
    flat_chunks = chunks_of(flat_source)[:args.appends]
    record_chunks = chunks_of(record)
    meta["recording"] = {"path": record.name, "bytes": record.stat().st_size,
                         "seconds": args.record_seconds, "chunks": len(record_chunks)}

    # --- 1b. AWS calls per append, in process ---
    if "calls" in args.only or "memory" in args.only:
        from bench import inproc
        inproc.environment(WORK / "tmp")
    if "calls" in args.only:
        log(f"counting AWS calls of {args.call_appends} in-process appends ...")
        calls = inproc.count_append_calls(flat_chunks[:args.call_appends])
        lat = calls.pop("latencies_s")
        from bench.scenarios import percentile
        w = min(100, len(lat) // 2)
        calls["inprocess_first_p50_ms"] = percentile(lat[:w], 50) * 1e3
        calls["inprocess_last_p50_ms"] = percentile(lat[-w:], 50) * 1e3
        calls["inprocess_ratio_p50"] = calls["inprocess_last_p50_ms"] / calls["inprocess_first_p50_ms"]
        raw["calls"] = calls
        log(f"  calls per append: {calls['calls_per_append']}")

    # --- HTTP scenarios, each run against a fresh stack ---
    from bench.api import Api
    from bench.scenarios import append_flatness, concurrency, time_to_ready, warm_up
    from bench.stack import Stack
    http = {"flatness", "concurrency", "ttr"} & args.only
    for run in range(args.runs if http else 0):
        log(f"run {run + 1}/{args.runs}: starting the stack ...")
        result: dict = {}
        with Stack(WORK / f"server-run{run + 1}.log") as stack:
            api = Api(stack.url)
            warm_up(api, record_chunks[0])
            if "flatness" in args.only:
                log(f"  flatness: {len(flat_chunks)} appends to one video ...")
                result["flatness"] = append_flatness(api, flat_chunks,
                                                     ready_timeout=60 if args.quick else 180,
                                                     emulator_url=stack.emulator_url)
                f = result["flatness"]
                log(f"    p50 {f['first_p50_ms']:.1f} -> {f['last_p50_ms']:.1f} ms "
                    f"(ratio {f['ratio_p50']:.2f}), p95 ratio {f['ratio_p95']:.2f}")
            if "concurrency" in args.only:
                result["concurrency"] = []
                for clients in args.clients:
                    log(f"  concurrency: {clients} clients x {args.per_client} appends ...")
                    c = concurrency(stack.url, record_chunks, clients, args.per_client,
                                    ready_timeout=60 if args.quick else 120,
                                    emulator_url=stack.emulator_url)
                    log(f"    {c['appends_per_s']:.1f} appends/s (p50 {c['p50_ms']:.0f} ms)")
                    result["concurrency"].append(c)
            if "ttr" in args.only:
                log(f"  time to ready: {len(record_chunks)} chunks ...")
                t = time_to_ready(api, record, record_chunks, WORK, stack.emulator_url,
                                  bucket="video-chunks-local",
                                  ready_timeout=90 if args.quick else 300,
                                  server_log=stack.log_path)
                if t.get("stuck"):
                    log(f"    NOT READY within the timeout: {t['stuck']}")
                log(f"    ready {t['time_to_ready_s']} s after the last append; "
                    f"ffmpeg copy {t['ffmpeg_copy_s']:.2f} s, S3 PUT {t['s3_put_s']:.2f} s; "
                    f"the final join moved {t.get('final_join_bytes')}")
                result["ttr"] = t
            api.close()
        raw["runs"].append(result)

    # --- diagnostic: the same appends with no join running during them ---
    if args.diagnose and "flatness" in args.only:
        log("diagnostic: flatness with joins deferred (JOIN_DELAY_SECONDS=900) ...")
        with Stack(WORK / "server-nojoin.log", join_delay_seconds=900) as stack:
            api = Api(stack.url)
            warm_up(api, record_chunks[0])
            f = append_flatness(api, flat_chunks, ready_timeout=0)
            api.close()
        log(f"    p50 {f['first_p50_ms']:.1f} -> {f['last_p50_ms']:.1f} ms "
            f"(ratio {f['ratio_p50']:.2f}), p95 ratio {f['ratio_p95']:.2f}")
        raw["flatness_joins_deferred"] = f

    # --- 3. memory of one join, in its own process ---
    if "memory" in args.only:
        from bench import inproc
        from bench.memory import run_join
        for size_mb in args.memory_mb:
            source = recording.sized_stream(record, size_mb * 1_000_000, log=log)
            for repeat in range(args.memory_runs):
                video_id, count, size = inproc.appended_video(source)
                log(f"  memory: joining {size / 1e6:.0f} MB ({count} chunks) in a child process ...")
                profile = str(WORK / f"join-{size_mb}MB.prof") if args.profile and repeat == 0 else None
                m = run_join(video_id, inproc.child_environment(), timeout=900, profile_out=profile)
                m.update(target_mb=size_mb, bytes=size, chunks=count, repeat=repeat)
                log(f"    outcome {m['outcome']}, {m['seconds']:.1f} s, sampled peak "
                    f"{m['sampled_peak_total_mb']:.0f} MB (python {m['sampled_peak_python_mb']:.0f}"
                    f" + ffmpeg {m['sampled_peak_ffmpeg_mb']:.0f})")
                raw["memory"].append(m)

    meta["elapsed_s"] = time.monotonic() - started
    meta["load_average_at_end"] = os.getloadavg()
    from bench.report import markdown, summarize
    summary = summarize(raw)
    raw["summary"] = summary
    table = markdown(raw, summary)
    print(table)
    latest = RESULTS / "latest.md"
    # `python -m bench.ready` keeps its own section in the same file: it stays.
    from bench.ready import BEGIN, END
    previous = latest.read_text() if latest.exists() else ""
    if BEGIN in previous and END in previous:
        table = table.rstrip("\n") + "\n\n" + BEGIN + previous.partition(BEGIN)[2].partition(END)[0] + END + "\n"
    latest.write_text(table)
    day = meta["date"][:10]
    out = RESULTS / f"{day}-{commit[:7] or 'nocommit'}.json"
    out.write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {RESULTS / 'latest.md'} and {out} in {meta['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
