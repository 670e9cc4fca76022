"""The `make run` stack (moto server + chalice local + join worker) in a subprocess on a
free loopback port, started the way tests/conftest.py's live_server fixture starts it."""
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
_EMULATOR = re.compile(r"emulated S3/DynamoDB/SQS at (http://127\.0\.0\.1:\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, log_path: Path, join_delay_seconds: int | None = None,
                 extra_env: dict | None = None):
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.emulator_url: str | None = None
        env = {k: v for k, v in os.environ.items()
                 if k not in ("AWS_ENDPOINT_URL", "JOIN_DELAY_SECONDS")}
        env.update(PORT=str(self.port), PYTHONUNBUFFERED="1")
        if join_delay_seconds is not None:  # otherwise the local stage's, as under make run
            env["JOIN_DELAY_SECONDS"] = str(join_delay_seconds)
        env.setdefault("FFMPEG_BINARY", str(ROOT / "layers" / "ffmpeg" / "bin" / "ffmpeg"))
        env.update(extra_env or {})
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> "Stack":
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "devtools.server"], cwd=ROOT,
                                            env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_text(errors="replace")
            match = _EMULATOR.search(text)
            if match:
                self.emulator_url = match.group(1)
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the local server did not start:\n" + text[-3000:])
            time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        """The server process (moto + join worker) and its chalice-local child."""
        out = {"server": self.process.pid}
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                if "chalice" in " ".join(child.cmdline()):
                    out["chalice_local"] = child.pid
        except psutil.Error:
            pass
        return out

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
