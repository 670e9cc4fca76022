"""In-process measurements against an embedded Emulator (moto server on a loopback port):
AWS calls per append (botocore before-call hooks on chalicelib.aws's clients), and the
setup for the memory benchmark (chunks appended without HTTP)."""
import collections
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.emulator import Emulator, provision, use_fake_credentials  # noqa: E402
from devtools.server import stage_environment  # noqa: E402

_emulator: Emulator | None = None


def environment(work_dir: Path) -> Emulator:
    """Start (once) an Emulator and point this process's settings at it."""
    global _emulator
    if _emulator is not None:
        return _emulator
    use_fake_credentials()
    _emulator = Emulator().start()
    os.environ["AWS_ENDPOINT_URL"] = _emulator.url
    for name, value in stage_environment().items():
        os.environ[name] = value
    os.environ["JOIN_DELAY_SECONDS"] = "0"
    work_dir.mkdir(parents=True, exist_ok=True)
    os.environ["WORK_DIR"] = str(work_dir)
    from chalicelib import aws
    from chalicelib.settings import get_settings
    get_settings.cache_clear()
    aws.reset()
    provision(get_settings(), _emulator.url)
    return _emulator


def child_environment() -> dict[str, str]:
    """The environment a join process needs to reach the same emulator."""
    return dict(os.environ)


class CallCounter:
    def __init__(self):
        self.counts = collections.Counter()
        self.enabled = False

    def __call__(self, model=None, event_name=None, **kwargs):
        if self.enabled:
            service = model.service_model.service_name if model else event_name.split(".")[1]
            self.counts[f"{service}.{model.name if model else event_name}"] += 1

    def params(self, params=None, model=None, **kwargs):
        if self.enabled and model is not None and "ConditionExpression" in (params or {}):
            self.counts[f"{model.service_model.service_name}.{model.name}(conditional)"] += 1

    def attach(self, client) -> None:
        client.meta.events.register("before-call.*.*", self)
        client.meta.events.register("provide-client-params.*.*", self.params)


def count_append_calls(chunks: list[bytes], log=print) -> dict:
    """Append `chunks` to one video through chalice.test.Client (the real app, no join worker)
    and count the AWS calls each append makes; also time them in-process."""
    from chalice.test import Client

    import app as application
    from chalicelib import aws
    counter = CallCounter()
    for client in (aws.s3(), aws.dynamodb(), aws.videos_table().meta.client, aws.sqs()):
        counter.attach(client)
    latencies = []
    with Client(application.app, stage_name="local", project_dir=str(ROOT)) as client:
        created = client.http.post("/create_video", headers={"Content-Type": "application/octet-stream"})
        assert created.status_code == 201, created.body
        import json
        body = json.loads(created.body)
        video_id, token = body["video_id"], body["upload_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "video/webm"}
        counter.enabled = True
        for chunk in chunks:
            started = time.perf_counter()
            r = client.http.post(f"/append_video/{video_id}", headers=headers, body=chunk)
            latencies.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise RuntimeError(f"in-process append answered {r.status_code}: {r.body[:300]}")
        counter.enabled = False
    n = len(chunks)
    per_append = {name: count / n for name, count in sorted(counter.counts.items())}
    return {"appends": n, "calls_total": dict(counter.counts), "calls_per_append": per_append,
            "latencies_s": latencies}


def appended_video(path: Path) -> tuple[int, int, int]:
    """A new video holding `path`'s bytes as 300 KB chunks, appended in-process.
    Returns (video_id, chunk count, bytes)."""
    from bench.recording import iter_chunks
    from chalicelib import wiring
    from chalicelib.settings import get_settings
    service = wiring.build(get_settings()).videos
    created = service.create()
    video_id = created.view.video.video_id
    count = size = 0
    for chunk in iter_chunks(path):
        service.append(video_id, created.upload_token, chunk)
        count += 1
        size += len(chunk)
    return video_id, count, size
