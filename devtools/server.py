"""`make run`: the API on http://127.0.0.1:$PORT against an embedded AWS emulator.

Starts a moto server (S3, DynamoDB, SQS) on a free loopback port, creates the `local`
stage's bucket, table and queue, runs `chalice local --stage local`, and runs the join job
in a worker process (devtools.worker) that polls the queue and calls the same handler the
SQS-triggered Lambda runs.
Ctrl-C stops everything.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from devtools.emulator import Emulator, provision, use_fake_credentials

ROOT = Path(__file__).resolve().parent.parent
STAGE = "local"


def stage_environment(stage: str = STAGE) -> dict[str, str]:
    """The environment variables .chalice/config.json sets for a stage."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    variables = dict(config.get("environment_variables", {}))
    variables.update(config["stages"][stage].get("environment_variables", {}))
    return variables


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"chalice local exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"chalice local did not answer on {url} within {seconds} s")


def start_worker(sweeps: bool) -> subprocess.Popen:
    """A worker process; one of them (`sweeps`) also runs the expiry sweep."""
    return subprocess.Popen([sys.executable, "-m", "devtools.worker"] + ([] if sweeps else ["--no-sweep"]),
                            cwd=ROOT, env=os.environ.copy())


def main() -> None:
    port = int(os.environ.get("PORT") or 8000)
    use_fake_credentials()
    emulator = Emulator().start()
    os.environ["AWS_ENDPOINT_URL"] = emulator.url
    for name, value in stage_environment().items():
        os.environ.setdefault(name, value)
    from chalicelib.settings import get_settings
    provision(get_settings(), emulator.url)

    chalice = subprocess.Popen(
        [str(Path(sys.executable).parent / "chalice"), "local", "--stage", STAGE,
         "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
        cwd=ROOT, env=os.environ.copy())
    workers: list[subprocess.Popen] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/health", chalice)
        # Several, as Lambda runs several invocations at once: a rendition's pieces (or a
        # join and a rendition) run side by side.
        workers = [start_worker(sweeps=n == 0) for n in range(get_settings().job_workers)]
        print(f"video-management-api is serving on {url} (emulated S3/DynamoDB/SQS at "
              f"{emulator.url}, {len(workers)} job workers); Ctrl-C stops it", flush=True)
        while not stop.is_set() and chalice.poll() is None:
            for n, worker in enumerate(workers):
                if worker.poll() is not None:
                    # As Lambda starts a new instance: the API and the emulator stay up, and
                    # the message the worker held comes back after its visibility timeout.
                    print(f"a job worker exited with {worker.returncode}; starting another",
                          file=sys.stderr, flush=True)
                    workers[n] = start_worker(sweeps=n == 0)
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in workers + [chalice]:
            if process.poll() is None:
                process.terminate()
        for process in workers + [chalice]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        emulator.stop()


if __name__ == "__main__":
    main()
