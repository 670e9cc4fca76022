"""`python -m bench.load`: many recorders on a bad network against the `make run` stack.

Each client creates a video and streams the chunks of one real recording (VP8/Opus WebM cut
at arbitrary bytes, as MediaRecorder cuts it) with Content-Range, in order. A share of the
appends is answered too late: the client stops waiting before the answer comes (a read
timeout), waits a moment and sends the same chunk again. Another share is sent twice at
once. Then each client finalizes, waits until its video is ready and checks:

- the catalog counts exactly the recording's chunks and bytes: none lost, none stored twice;
- the compiled video holds the source's packets: the same number of video frames and of
  audio packets, and the same audio duration (ffmpeg's framecrc, no decoding).

Prints throughput and latency percentiles of the appends and writes
bench/results/load-latest.md. Sends traffic only to the stack on 127.0.0.1, and stops.
"""
import argparse
import datetime
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.recording import WORK, ffmpeg_binary, recording  # noqa: E402
from bench.scenarios import percentile  # noqa: E402
from bench.stack import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TIMEOUT = 60
LATE_READ_TIMEOUT = 0.01  # seconds: the client gives up on the answer this soon
RETRY_PAUSE = 1.0  # and sends the chunk again after this pause
RESET_RETRIES = 5


def cut(data: bytes, pieces: int, rng: random.Random) -> list[bytes]:
    offsets = sorted(rng.sample(range(1, len(data)), pieces - 1))
    bounds = [0, *offsets, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def packets(path: Path) -> dict:
    """Per stream: the packet count, and the end of the last packet in seconds."""
    result = subprocess.run([ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0",
                             "-c", "copy", "-f", "framecrc", "-"], capture_output=True, check=True)
    time_bases, streams = {}, {}
    for line in result.stdout.decode().splitlines():
        if line.startswith("#tb "):
            index, base = line[4:].split(":")
            numerator, denominator = base.strip().split("/")
            time_bases[int(index)] = int(numerator) / int(denominator)
        elif line and not line.startswith("#"):
            index, _, pts, duration = (int(field) for field in line.split(",")[:4])
            count, end = streams.get(index, (0, 0.0))
            streams[index] = (count + 1, max(end, (pts + duration) * time_bases[index]))
    return streams


class Client:
    def __init__(self, url: str, chunks: list[bytes], rng: random.Random, late: float, double: float):
        self.url, self.chunks, self.rng = url, chunks, rng
        self.late, self.double = late, double
        self.session = requests.Session()
        self.latencies: list[float] = []
        self.counts = {"late": 0, "doubled": 0, "reset": 0}

    def _post(self, video_id: int, auth: dict, first: int, chunk: bytes,
              read_timeout: float = TIMEOUT) -> requests.Response:
        """One append, sent again after a connection reset (chalice local's listen queue is
        short: 50 clients at once overflow it), as a client on a bad network does."""
        for attempt in range(RESET_RETRIES):
            try:
                return requests.post(
                    f"{self.url}/append_video/{video_id}/", data=chunk, timeout=(10, read_timeout),
                    headers={**auth, "Content-Type": "video/webm",
                             "Content-Range": f"bytes {first}-{first + len(chunk) - 1}/*"})
            except requests.ConnectionError:
                if attempt == RESET_RETRIES - 1:
                    raise
                self.counts["reset"] += 1
                time.sleep(RETRY_PAUSE)

    def run(self) -> dict:
        created = self.session.post(f"{self.url}/create_video/", timeout=TIMEOUT).json()
        video_id = created["video_id"]
        auth = {"Authorization": f"Bearer {created['upload_token']}"}
        first = 0
        for index, chunk in enumerate(self.chunks):
            roll = self.rng.random()
            if roll < self.late:
                self.counts["late"] += 1
                try:
                    self._post(video_id, auth, first, chunk, read_timeout=LATE_READ_TIMEOUT)
                except requests.ReadTimeout:
                    pass  # the answer came too late: the client did not see it
                time.sleep(RETRY_PAUSE)
            elif roll < self.late + self.double:
                self.counts["doubled"] += 1
                with ThreadPoolExecutor(2) as pair:
                    twins = [pair.submit(self._post, video_id, auth, first, chunk) for _ in range(2)]
                    answers = [twin.result() for twin in twins]
                assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
                assert {a.json()["chunk_index"] for a in answers} == {index}, [a.text for a in answers]
            started = time.perf_counter()
            answer = self._post(video_id, auth, first, chunk)  # the send, or the resend
            self.latencies.append(time.perf_counter() - started)
            if answer.status_code != 200 or answer.json()["chunk_index"] != index:
                raise RuntimeError(f"video {video_id} chunk {index}: {answer.status_code} {answer.text[:300]}")
            first += len(chunk)
        self.session.post(f"{self.url}/videos/{video_id}/finalize", headers=auth, timeout=TIMEOUT)
        return {"video_id": video_id, "auth": auth}

    def wait_ready(self, video: dict, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.session.get(f"{self.url}/videos/{video['video_id']}", headers=video["auth"],
                                      timeout=TIMEOUT).json()
            if status["status"] != "processing" or time.monotonic() > deadline:
                return status
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--late", type=float, default=0.10, help="share of appends answered too late")
    parser.add_argument("--double", type=float, default=0.05, help="share of appends sent twice at once")
    parser.add_argument("--seconds", type=int, default=20, help="length of the recording")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[load {time.strftime('%H:%M:%S')}] {message}", flush=True)

    source = recording(args.seconds, bitrate_k=600, height=360, log=log)
    data = source.read_bytes()
    expected = packets(source)
    rngs = [random.Random(args.seed * 1000 + n) for n in range(args.clients)]
    WORK.mkdir(parents=True, exist_ok=True)
    with Stack(WORK / "server-load.log") as stack:
        clients = [Client(stack.url, cut(data, args.chunks, rng), rng, args.late, args.double)
                   for rng in rngs]
        log(f"{args.clients} clients x {args.chunks} chunks of a {len(data) / 1e6:.1f} MB recording ...")
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            videos = list(pool.map(lambda client: client.run(), clients))
        streaming = time.perf_counter() - started
        log(f"  streamed in {streaming:.1f} s; waiting for {len(videos)} videos ...")
        def check(pair) -> list[str]:
            """What is wrong with one client's video: nothing, when it is whole."""
            client, video = pair
            name = f"video {video['video_id']}"
            status = client.wait_ready(video, timeout=300)
            if status["status"] != "ready":
                return [f"{name}: {status['status']} {status.get('error')}"]
            wrong = []
            if (status["chunk_count"], status["committed_bytes"]) != (args.chunks, len(data)):
                wrong.append(f"{name}: {status['chunk_count']} chunks, {status['committed_bytes']} bytes")
            url = client.session.get(f"{stack.url}/get_video/{video['video_id']}/", headers=video["auth"],
                                     allow_redirects=False, timeout=TIMEOUT).headers["Location"]
            path = WORK / f"load-{video['video_id']}.webm"
            path.write_bytes(requests.get(url, timeout=TIMEOUT).content)
            found = packets(path)
            path.unlink()
            for index, (count, end) in expected.items():
                got_count, got_end = found.get(index, (0, 0.0))
                if got_count != count or abs(got_end - end) > 0.05:
                    wrong.append(f"{name} stream {index}: {got_count} packets ending at {got_end:.3f} s, "
                                 f"the source {count} at {end:.3f} s")
            return wrong

        with ThreadPoolExecutor(8) as pool:
            verdicts = list(pool.map(check, zip(clients, videos)))
    problems = [problem for wrong in verdicts for problem in wrong]
    whole = sum(1 for wrong in verdicts if not wrong)
    latencies = [l for client in clients for l in client.latencies]
    counts = {key: sum(client.counts[key] for client in clients) for key in clients[0].counts}
    table = "\n".join([
        f"# Load: {args.clients} recorders on a bad network",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; "
        f"command: `python -m bench.load` {' '.join(sys.argv[1:])}",
        f"- recording: {len(data) / 1e6:.2f} MB, {args.seconds} s VP8/Opus, cut at random bytes into "
        f"{args.chunks} chunks; every append with Content-Range",
        f"- faults: {counts['late']} appends answered too late (read timeout {LATE_READ_TIMEOUT * 1000:.0f} ms, "
        f"resent after {RETRY_PAUSE:.0f} s), {counts['doubled']} sent twice at once; "
        f"{counts['reset']} connections reset by the local server's short listen queue, and resent",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| appends answered (each chunk's last send) | {len(latencies)} |",
        f"| throughput while streaming | {len(latencies) / streaming:.1f} appends/s ({streaming:.1f} s) |",
        f"| append latency p50 / p95 / p99 | {percentile(latencies, 50) * 1e3:.0f} / "
        f"{percentile(latencies, 95) * 1e3:.0f} / {percentile(latencies, 99) * 1e3:.0f} ms |",
        f"| videos ready, with the source's chunks, bytes and packets | {whole} of {len(videos)} |",
        f"| problems (lost, duplicated, different packets, not ready) | {len(problems)} |",
    ] + [f"| problem | {p} |" for p in problems[:20]]) + "\n"
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load-latest.md").write_text(table)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
