"""`python -m bench.ramp`: recorders at 1 chunk/s against the `make run` stack, in rising
steps, until something saturates.

Each recorder creates a video and streams one real recording (a VP8/Opus WebM stream written
to a pipe, as MediaRecorder writes it, cut into the bytes of one second each) with
Content-Range, one chunk a second on a fixed schedule; a chunk is sent when it is due, or as
soon as the previous append is answered if that came late (an uploader sends in order).
Recorders carry over from step to step; at each step's end a few stop: they finalize, as the
recorder page does, and we time their last append's answer to `ready`.

Per step: offered vs achieved appends/s, append latency, errors by status, the join queue
(visible / delayed / in flight, from the emulator's SQS), time to ready of the stoppers, and
CPU% and RSS of each process of the stack (moto emulator, chalice local, join worker with its
ffmpeg children) and of this generator, sampled with psutil every 0.5 s.

Writes bench/results/ramp-latest.md and ramp-latest.json. Talks only to 127.0.0.1.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.recording import WORK, ffmpeg_binary, recording  # noqa: E402
from bench.scenarios import emulator_client, percentile  # noqa: E402
from bench.stack import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TIMEOUT = 30  # seconds for one request: far beyond the 1 s a recorder has per chunk
READY_TIMEOUT = 120
SAMPLE_SECONDS = 0.5
QUEUE_SECONDS = 1.0
COMPONENTS = ("emulator", "chalice_local", "worker", "generator")


class Recorder(threading.Thread):
    """One recorder: a video, one chunk per second, in order, each with Content-Range."""

    def __init__(self, url: str, chunks: list[bytes], start_at: float, log: list):
        super().__init__(daemon=True)
        self.url, self.chunks, self.start_at, self.log = url, chunks, start_at, log
        self.session = requests.Session()  # keep-alive: one chalice-local thread per recorder
        self.stop_at: float | None = None  # set: send no chunk due after this
        self.timed = False  # a stopper: finalizes after its last chunk and is timed to ready
        self.video_id: int | None = None
        self.last_answer: float | None = None
        self.ready: dict | None = None  # for a stopper: its time to ready
        self.scheduled = 0  # chunks that fell due

    def _post_chunk(self, index: int, first: int, chunk: bytes) -> None:
        """Send one chunk until it is stored; every failed send is logged as an error."""
        while True:
            sent = time.monotonic()
            try:
                answer = self.session.post(
                    f"{self.url}/append_video/{self.video_id}/", data=chunk, timeout=TIMEOUT,
                    headers={**self.auth, "Content-Type": "video/webm",
                             "Content-Range": f"bytes {first}-{first + len(chunk) - 1}/*"})
                status = str(answer.status_code)
            except requests.RequestException as error:
                status = type(error).__name__
            done = time.monotonic()
            self.log.append((sent, done, status))
            if status == "200":
                self.last_answer = done
                return
            time.sleep(0.5)  # as the uploader does before sending the chunk again
            if self.stop_at is not None and time.monotonic() > self.stop_at + 30:
                return

    def run(self) -> None:
        time.sleep(max(0.0, self.start_at - time.monotonic()))
        created = self.session.post(f"{self.url}/create_video/", timeout=TIMEOUT).json()
        self.video_id = created["video_id"]
        self.auth = {"Authorization": f"Bearer {created['upload_token']}"}
        first = 0
        for index, chunk in enumerate(self.chunks):
            due = self.start_at + index
            if self.stop_at is not None and due >= self.stop_at:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            if self.stop_at is not None and due >= self.stop_at:
                break
            self.scheduled += 1
            self._post_chunk(index, first, chunk)
            first += len(chunk)
        if not self.timed or self.last_answer is None:
            return
        # The recorder page finalizes when recording stops; then it polls the status.
        self.session.post(f"{self.url}/videos/{self.video_id}/finalize", headers=self.auth,
                          timeout=TIMEOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            status = self.session.get(f"{self.url}/videos/{self.video_id}", headers=self.auth,
                                      timeout=TIMEOUT).json()
            if status["status"] in ("ready", "failed"):
                break
            time.sleep(0.25)
        self.ready = {"video_id": self.video_id, "status": status["status"],
                      "seconds": round(time.monotonic() - self.last_answer, 2),
                      "chunks": status.get("chunk_count"), "error": status.get("error")}


class Sampler(threading.Thread):
    """CPU% and RSS of each process of the stack and of this generator, every 0.5 s; the
    join queue's depth every second."""

    def __init__(self, stack: Stack):
        super().__init__(daemon=True)
        self.stack = stack
        self.stop = threading.Event()
        self.samples: list[dict] = []
        self.queue: list[dict] = []
        self._processes: dict[int, psutil.Process] = {}
        self._last: dict[int, tuple[float, float]] = {}

    def _process(self, pid: int) -> psutil.Process:
        if pid not in self._processes:
            self._processes[pid] = psutil.Process(pid)
        return self._processes[pid]

    def _cpu(self, process: psutil.Process, with_children: bool) -> float:
        """CPU % of one core since the last sample, from CPU times: the join worker's counts
        the ffmpeg runs it has waited for (children_*), which are too short to sample."""
        times = process.cpu_times()
        used = times.user + times.system
        if with_children:
            used += times.children_user + times.children_system
        now = time.monotonic()
        last = self._last.get(process.pid)
        self._last[process.pid] = (now, used)
        return 0.0 if last is None else 100 * (used - last[1]) / max(1e-6, now - last[0])

    def _components(self) -> dict[str, list[psutil.Process]]:
        """The moto emulator runs in a thread of devtools.server itself; chalice local and
        the join worker are its children, ffmpeg the worker's (counted with it). Looked up
        every time: a worker that exits is restarted under another pid."""
        server = self._process(self.stack.process.pid)
        found = {"emulator": [server], "chalice_local": [], "worker": [],
                 "generator": [self._process(os.getpid())]}
        for child in server.children(recursive=True):
            try:
                line = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "devtools.worker" in line:
                found["worker"].append(self._process(child.pid))
            elif "chalice" in line:
                found["chalice_local"].append(self._process(child.pid))
        return found

    def run(self) -> None:
        sqs = emulator_client("sqs", self.stack.emulator_url)
        queue_url = sqs.get_queue_url(QueueName="video-joins-local")["QueueUrl"]
        psutil.cpu_percent(None)
        next_queue = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            sample = {"t": now, "system_cpu": psutil.cpu_percent(None)}  # 100 = every core
            for name, processes in self._components().items():
                cpu = rss = 0.0
                for process in processes:
                    try:
                        cpu += self._cpu(process, with_children=name == "worker")
                        rss += process.memory_info().rss
                    except psutil.Error:
                        pass
                sample[name] = (cpu, rss / 1e6)
            ours = sum(sample[name][0] for name in COMPONENTS)
            # What the rest of the machine used (another engineer's jobs), in % of one core.
            sample["others"] = (max(0.0, sample["system_cpu"] * psutil.cpu_count() - ours), 0.0)
            self.samples.append(sample)
            if now >= next_queue:
                next_queue = now + QUEUE_SECONDS
                try:
                    attributes = sqs.get_queue_attributes(
                        QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
                    self.queue.append({
                        "t": time.monotonic(),
                        "visible": int(attributes["ApproximateNumberOfMessages"]),
                        "delayed": int(attributes["ApproximateNumberOfMessagesDelayed"]),
                        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"])})
                except Exception as error:  # a slow emulator is a finding, not a crash
                    self.queue.append({"t": time.monotonic(), "error": repr(error)})
            self.stop.wait(SAMPLE_SECONDS)


def chunks_of_one_second(path: Path, seconds: int) -> list[bytes]:
    """The stream cut every second's worth of bytes, at arbitrary positions, as MediaRecorder
    with a 1 s timeslice cuts it."""
    data = path.read_bytes()
    size = -(-len(data) // seconds)
    return [data[i:i + size] for i in range(0, len(data), size)]


def summarize_step(step: dict, log: list, sampler: Sampler, recorders: list[Recorder]) -> dict:
    start, end = step["start"], step["end"]
    duration = end - start
    # Appends sent inside the step (a recorder that keeps up sends each chunk when it falls
    # due), counted if answered by the time this runs: at the end of the run for the table.
    inside = [entry for entry in log if start <= entry[0] < end]
    ok = [done - sent for sent, done, status in inside if status == "200"]
    errors: dict[str, int] = {}
    for _, _, status in inside:
        if status != "200":
            errors[status] = errors.get(status, 0) + 1
    # Offered: the chunks that fell due inside the step, one a second per active recorder.
    offered = 0
    for recorder in recorders:
        for k in range(len(recorder.chunks)):
            due = recorder.start_at + k
            if due >= end or (recorder.stop_at is not None and due >= recorder.stop_at):
                break
            offered += due >= start
    samples = [s for s in sampler.samples if start <= s["t"] < end]
    cpu = {}
    for name in (*COMPONENTS, "others"):
        values = [s[name][0] for s in samples if name in s]
        rss = [s[name][1] for s in samples if name in s]
        cpu[name] = {"cpu_mean": round(statistics.fmean(values), 1) if values else None,
                     "cpu_p90": round(percentile(values, 90), 1) if values else None,
                     "rss_max_mb": round(max(rss), 1) if rss else None}
    system = [s["system_cpu"] for s in samples]
    queue = [q for q in sampler.queue if start <= q["t"] < end and "error" in q]
    depth = [q for q in sampler.queue if start <= q["t"] < end and "error" not in q]
    third = max(1, len(depth) // 3)
    head = statistics.fmean(q["visible"] for q in depth[:third]) if depth else 0
    tail = statistics.fmean(q["visible"] for q in depth[-third:]) if depth else 0
    result = {
        "recorders": step["recorders"], "seconds": round(duration, 1),
        "offered_per_s": round(offered / duration, 1),
        "achieved_per_s": round(len(ok) / duration, 1),
        "appends_ok": len(ok),
        "p50_ms": round(percentile(ok, 50) * 1e3) if ok else None,
        "p95_ms": round(percentile(ok, 95) * 1e3) if ok else None,
        "p99_ms": round(percentile(ok, 99) * 1e3) if ok else None,
        "errors": errors,
        "queue_visible_first_third": round(head, 1), "queue_visible_last_third": round(tail, 1),
        "queue_visible_max": max((q["visible"] for q in depth), default=None),
        "queue_delayed_mean": round(statistics.fmean(q["delayed"] for q in depth), 1) if depth else None,
        "queue_in_flight_mean": round(statistics.fmean(q["in_flight"] for q in depth), 1) if depth else None,
        "queue_poll_errors": len(queue),
        "cpu": cpu,
        "system_cpu_mean": round(statistics.fmean(system), 1) if system else None,
    }
    reasons = []
    if offered and len(ok) < 0.95 * offered:
        reasons.append(f"achieved {len(ok) / offered:.0%} of offered")
    if ok and percentile(ok, 95) > 1.0:
        reasons.append(f"p95 {percentile(ok, 95):.2f} s > 1 s")
    if errors:
        reasons.append(f"errors {errors}")
    if tail > head + max(2.0, 0.1 * step["recorders"]):
        reasons.append(f"join backlog grew {head:.0f} -> {tail:.0f} visible messages")
    result["saturated"] = reasons
    # A worker that keeps up takes each message as soon as its delay ends: visible messages
    # stay near 0 while about one per recorder is delayed. At most one message per video is
    # queued, so a worker that cannot keep up shows as visible ≈ recorders, not as growth.
    settled = depth[third:]
    behind = statistics.fmean(q["visible"] for q in settled) if settled else 0
    result["queue_visible_settled"] = round(behind, 1)
    result["join_worker_behind"] = behind > 0.5 * step["recorders"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="5,10,15,20,30,40,60,80", help="recorders per step")
    parser.add_argument("--step-seconds", type=float, default=35)
    parser.add_argument("--stoppers", type=int, default=3,
                        help="recorders that stop (finalize) at each step's end, timed to ready")
    parser.add_argument("--keep-rising", action="store_true",
                        help="run every step even after one saturates")
    args = parser.parse_args()
    steps = [int(n) for n in args.steps.split(",")]

    def say(message: str) -> None:
        print(f"[ramp {time.strftime('%H:%M:%S')}] {message}", flush=True)

    # Long enough for a recorder that lives through every step.
    seconds = int(len(steps) * (args.step_seconds + 2) + 40)
    source = recording(max(240, seconds), bitrate_k=500, height=360, log=say)
    chunks = chunks_of_one_second(source, max(240, seconds))
    say(f"source {source.name}: {len(chunks)} chunks of ~{len(chunks[0]) / 1e3:.0f} kB")
    load_start = os.getloadavg()
    began = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    log: list = []
    recorders: list[Recorder] = []
    results: list[dict] = []
    stoppers: list[Recorder] = []
    with Stack(WORK / "server-ramp.log") as stack:
        sampler = Sampler(stack)
        sampler.start()
        # One request through every layer first, so the first step does not pay imports.
        warm = Recorder(stack.url, chunks[:2], time.monotonic(), [])
        warm.run()
        for index, count in enumerate(steps):
            start = time.monotonic()
            active = [r for r in recorders if r.stop_at is None]
            new = count - len(active)
            for n in range(new):
                # Spread over the first second, as real recorders are, and 0.1 s clear of
                # whole seconds after the step's start, so no chunk falls due at its edge.
                recorder = Recorder(stack.url, chunks, start + 0.1 + 0.8 * n / max(1, new), log)
                recorders.append(recorder)
                recorder.start()
            active = [r for r in recorders if r.stop_at is None]
            say(f"step {index + 1}: {count} recorders ({new} new) for {args.step_seconds:.0f} s")
            time.sleep(max(0.0, start + args.step_seconds - time.monotonic()))
            end = time.monotonic()
            # The appends sent just before the end get 2 s to be answered before the step is
            # judged (the recorders keep sending; the final table counts them all).
            time.sleep(2)
            # The oldest few stop at the step's end; the next step starts fresh ones instead.
            leaving = [r for r in active][:args.stoppers]
            for recorder in leaving:
                recorder.stop_at, recorder.timed = end, True
            stoppers.append(leaving)
            step = summarize_step({"recorders": count, "start": start, "end": end},
                                  log, sampler, recorders)
            step.update(stoppers=leaving, start=start, end=end)
            results.append(step)
            c = step["cpu"]
            say(f"  offered {step['offered_per_s']}/s achieved {step['achieved_per_s']}/s, "
                f"p50/p95/p99 {step['p50_ms']}/{step['p95_ms']}/{step['p99_ms']} ms, "
                f"errors {step['errors']}, queue visible {step['queue_visible_first_third']}"
                f"->{step['queue_visible_last_third']} delayed~{step['queue_delayed_mean']}; cpu% "
                + ", ".join(f"{k} {v['cpu_mean']}" for k, v in c.items())
                + (f"; SATURATED: {'; '.join(step['saturated'])}" if step["saturated"] else ""))
            if step["saturated"] and not args.keep_rising:
                break
        # The last step's stoppers are timed while the others still send (up to 30 s), as
        # the earlier steps' are; then everyone stops.
        for recorder in stoppers[-1]:
            recorder.join(max(0.0, end + 30 - time.monotonic()))
        for recorder in recorders:
            if recorder.stop_at is None:
                recorder.stop_at = time.monotonic()
        wait_until = time.monotonic() + READY_TIMEOUT + 10
        for recorder in [r for group in stoppers for r in group]:
            recorder.join(max(0.0, wait_until - time.monotonic()))
        sampler.stop.set()
        sampler.join(5)
        pids = stack.pids()
    wall = time.monotonic() - began
    load_end = os.getloadavg()
    for step in results:
        step["saturated_live"] = step["saturated"]  # what stopped the ramp, judged at the step's end
        step.update(summarize_step({"recorders": step["recorders"], "start": step["start"],
                                    "end": step["end"]}, log, sampler, recorders),
                    stoppers=step["stoppers"])
        step["stoppers"] = [r.ready or {"video_id": r.video_id, "status": "not ready in time"}
                            for r in step["stoppers"]]
    write(args, results, source, chunks, load_start, load_end, wall, pids, sampler, say)


def verdict(results: list[dict]) -> tuple[str, dict | None]:
    saturated = next((s for s in results if s["saturated"]), None)
    if saturated is None:
        return (f"no step saturated up to {results[-1]['recorders']} recorders", None)
    return (f"saturated at {saturated['recorders']} concurrent recorders at 1 chunk/s "
            f"(offered ≈ {saturated['offered_per_s']} appends/s): {'; '.join(saturated['saturated'])}",
            saturated)


def busiest(step: dict) -> str:
    name, value = max(((k, step["cpu"][k]["cpu_mean"] or 0) for k in COMPONENTS), key=lambda kv: kv[1])
    return f"{name} {value:.0f}%"


def write(args, results, source, chunks, load_start, load_end, wall, pids, sampler, say) -> None:
    ffmpeg = subprocess.run([ffmpeg_binary(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    text, saturated = verdict(results)
    rows = []
    for s in results:
        c = s["cpu"]
        ready = ", ".join(f"{r['seconds']}" if r.get("status") == "ready" else r.get("status", "?")
                          for r in s["stoppers"])
        errors = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "0"
        rows.append(
            f"| {s['recorders']} | {s['offered_per_s']} | {s['achieved_per_s']} | "
            f"{s['p50_ms']} / {s['p95_ms']} / {s['p99_ms']} | {errors} | "
            f"{s['queue_visible_first_third']} → {s['queue_visible_last_third']} (max {s['queue_visible_max']}) / "
            f"{s['queue_delayed_mean']} / {s['queue_in_flight_mean']} | {'yes' if s['join_worker_behind'] else 'no'} | {ready} | "
            f"{c['emulator']['cpu_mean']} / {c['chalice_local']['cpu_mean']} / {c['worker']['cpu_mean']} / "
            f"{c['generator']['cpu_mean']} | {c['others']['cpu_mean']} | {s['system_cpu_mean']} | "
            f"{c['emulator']['rss_max_mb']:.0f} / {c['chalice_local']['rss_max_mb']:.0f} / "
            f"{c['worker']['rss_max_mb']:.0f} / {c['generator']['rss_max_mb']:.0f} | "
            f"{'; '.join(s['saturated']) or '-'} |")
    lines = [
        "# Ramp: recorders at 1 chunk/s, rising until something saturates",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; "
        f"command: `.venv/bin/python -m bench.ramp {' '.join(sys.argv[1:])}`".rstrip(),
        f"- machine: {psutil.cpu_count()} cores, Python {platform.python_version()}, {ffmpeg}; "
        f"load average at start {tuple(round(x, 2) for x in load_start)}, "
        f"at end {tuple(round(x, 2) for x in load_end)}; total wall time {wall:.0f} s",
        f"- stack: `python -m devtools.server` (moto emulator in the server process, `chalice local`, "
        f"join worker at nice 10) in a subprocess, the local stage's JOIN_DELAY_SECONDS",
        f"- recording: {source.name}, cut into 1 s chunks of ~{len(chunks[0]) / 1e3:.0f} kB, each "
        f"append with Content-Range; one thread with its own keep-alive session per recorder; "
        f"{args.step_seconds:.0f} s per step; recorders carry over, {args.stoppers} stop (finalize) at each "
        f"step's end and are timed from their last append's answer to `ready`",
        "",
        "| recorders | offered /s | achieved /s | append p50 / p95 / p99 ms | errors | join queue: visible first→last third (max) / delayed / in flight | join worker behind | stoppers' last chunk → ready, s | CPU % of a core: emulator / chalice / worker(+ffmpeg) / generator | CPU % of a core, other processes | machine CPU % (100 = all cores) | RSS MB emulator / chalice / worker / generator | saturation |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Verdict**: {text}.",
    ]
    behind = next((s for s in results if s["join_worker_behind"]), None)
    if behind:
        lines.append(f"The join worker first fell behind at {behind['recorders']} recorders: "
                     f"{behind['queue_visible_settled']} messages visible on average after the step's "
                     f"first third (a worker that keeps up leaves ~0 visible).")
    if saturated:
        lines.append(f"Busiest process in that step: {busiest(saturated)} of one core (CPU % is per core; "
                     f"the machine has {psutil.cpu_count()}).")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ramp-latest.md").write_text(table)
    t0 = sampler.samples[0]["t"] if sampler.samples else 0
    (RESULTS / "ramp-latest.json").write_text(json.dumps({
        "argv": sys.argv[1:], "load_start": load_start, "load_end": load_end, "wall_s": wall,
        "pids": pids, "verdict": text, "steps": results,
        "samples": [{**s, "t": round(s["t"] - t0, 2)} for s in sampler.samples],
        "queue": [{**q, "t": round(q["t"] - t0, 2)} for q in sampler.queue],
    }, indent=1, default=str))
    say(f"wrote {RESULTS / 'ramp-latest.md'} and ramp-latest.json")


if __name__ == "__main__":
    main()
