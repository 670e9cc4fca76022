"""Shared test set-up. The tiers, by folder:

- tests/unit: the use cases, rules and parsers over the in-memory backend; no moto, no
  ffmpeg subprocess. `make test-unit` runs them alone, in seconds.
- tests/integration: the AWS adapters on moto (and the contract both backends keep), the
  real ffmpeg on real media, the HTTP contract in process.
- tests/e2e: the `make run` stack over HTTP, and headless Chromium recording through it.

Here: the `local` stage's settings, fake credentials and the layer's ffmpeg are put in the
environment before anything imports the app; `memory` and `clocked` give the service over
the in-memory backend; `aws` starts moto's in-process S3, DynamoDB and SQS; `live_server`
runs the real `make run` stack in a subprocess on a free port.
"""
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CHROME_VP8 = FIXTURES / "chrome-vp8-500ms"

sys.path.insert(0, str(ROOT))
from devtools.emulator import provision, use_fake_credentials  # noqa: E402
from devtools.server import stage_environment  # noqa: E402

use_fake_credentials()
os.environ.pop("AWS_ENDPOINT_URL", None)  # moto's in-process mock ignores requests while set
for _name, _value in stage_environment().items():
    os.environ[_name] = _value
os.environ["JOIN_DELAY_SECONDS"] = "0"
os.environ.setdefault("FFMPEG_BINARY", str(ROOT / "layers" / "ffmpeg" / "bin" / "ffmpeg"))

from chalicelib import aws as aws_clients  # noqa: E402
from chalicelib import wiring  # noqa: E402
from chalicelib.settings import get_settings  # noqa: E402
from tests.helpers import Clock  # noqa: E402


def fixture_chunks() -> list[bytes]:
    chunks = [path.read_bytes() for path in sorted(CHROME_VP8.glob("*.chunk"))]
    if not chunks:  # a missing directory is a broken checkout, not an empty recording
        pytest.fail(f"no Chromium fixture chunks in {CHROME_VP8}")
    return chunks


@pytest.fixture
def settings_env(monkeypatch):
    """Change settings for one test: settings_env(NAME="value", ...)."""
    def apply(**variables):
        for name, value in variables.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()
        return get_settings()
    yield apply
    get_settings.cache_clear()


@pytest.fixture
def aws():
    """In-process moto with the stage's bucket, table and queue; fresh clients per test."""
    from moto import mock_aws
    get_settings.cache_clear()
    aws_clients.reset()
    with mock_aws():
        provision(get_settings())
        yield
    aws_clients.reset()
    get_settings.cache_clear()


@pytest.fixture
def memory():
    """The service over the in-memory backend."""
    get_settings.cache_clear()
    return wiring.build(get_settings(), wiring.memory_backend())


@pytest.fixture
def clocked(settings_env):
    """The service over the in-memory backend, with JOIN_DELAY_SECONDS=5 and a clock the
    test moves by hand (the queue's delays follow it too)."""
    clock = Clock()
    return wiring.build(settings_env(JOIN_DELAY_SECONDS=5), wiring.memory_backend(clock), clock)


@pytest.fixture
def on_moto(aws):
    """The service over the AWS adapters, on the in-process mock."""
    return wiring.build(get_settings())


@pytest.fixture
def clocked_on_moto(aws, settings_env):
    """`clocked` over the AWS adapters on the in-process mock."""
    clock = Clock()
    return wiring.build(settings_env(JOIN_DELAY_SECONDS=5), clock=clock)


@pytest.fixture
def emulator(monkeypatch):
    """The moto server `make run` uses, over HTTP: unlike the in-process mock it serves
    concurrent requests, with DynamoDB's per-request atomicity."""
    from devtools.emulator import Emulator
    with Emulator() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        get_settings.cache_clear()
        aws_clients.reset()
        provision(get_settings(), server.url)
        yield server
    aws_clients.reset()
    get_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, url: str, process: subprocess.Popen, log: Path):
        self.url = url
        self.process = process
        self.log = log

    @property
    def emulator_url(self) -> str:
        return re.search(r"emulated S3/DynamoDB/SQS at (http://[\d.:]+)", self.log.read_text()).group(1)


@contextlib.contextmanager
def running_stack(log: Path, **settings: str):
    """The whole local stack as `make run` starts it, on a free port, with these settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env.update({"PORT": str(port), "JOIN_DELAY_SECONDS": "0", "PYTHONUNBUFFERED": "1", **settings})
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "devtools.server"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the local server did not start:\n" + log.read_text()[-3000:])
        if "is serving on" in log.read_text():
            break
        time.sleep(0.2)
    try:
        yield LiveServer(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    """What `make package` writes for the dev stage (sam.json, deployment.zip), made once."""
    from tests.deployment import package
    out_dir = tmp_path_factory.mktemp("package")
    package(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def packaged_template(package_dir) -> dict:
    """The dev stage's deployment template, merged as `make package` merges it."""
    import json
    return json.loads((package_dir / "sam.json").read_text())


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    # No renditions of the long recordings some tests make (10 minutes, to seek in): their
    # pieces would keep the two local workers from the joins the next tests wait for.
    with running_stack(tmp_path_factory.mktemp("server") / "server.log",
                       RENDITION_MAX_SECONDS="60") as server:
        yield server


def wait_for_video(get, timeout: float = 60.0, interval: float = 0.3):
    """Call get() until it answers something other than 202; return that answer."""
    deadline = time.monotonic() + timeout
    while True:
        response = get()
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(interval)
