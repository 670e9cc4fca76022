"""A local job worker: polls the job queue and hands each message to app.join_videos,
the handler the SQS-triggered Lambda runs on AWS, and (unless started with --no-sweep: one
of the JOB_WORKERS workers devtools.server starts sweeps) runs the expiry sweep AWS runs on
a schedule. Its own process, as the join Lambda is
its own function: a join's CPU and I/O stay out of the API's and the emulator's way.

Started by devtools.server with the stage's environment (AWS_ENDPOINT_URL included).
"""
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sqs_event(body: str, receipt: str) -> dict:
    return {"Records": [{"messageId": receipt[:36], "receiptHandle": receipt, "body": body,
                         "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:local"}]}


def deliver_next(app_module, wait_seconds: int = 0) -> bool:
    """Hand the next queued join message to app.join_videos, as the SQS trigger does, and
    acknowledge it once handled; False when the queue had none. A message the handler
    reports as failed (batchItemFailures), or a handler that raises, leaves it on the
    queue, to come back after its visibility timeout, as on Lambda."""
    from chalice.local import LambdaContext
    delivery = app_module.services().backend.queue.receive(wait_seconds)
    if delivery is None:
        return False
    context = LambdaContext("join_videos", memory_size=1024, max_runtime_ms=900_000)
    event = sqs_event(delivery.body, delivery.receipt)
    answer = app_module.join_videos(event, context) or {}
    failed = {item["itemIdentifier"] for item in answer.get("batchItemFailures", [])}
    if event["Records"][0]["messageId"] not in failed:
        delivery.acknowledge()
    return True


# How often the worker runs app.expire_abandoned, which AWS runs from a schedule.
SWEEP_SECONDS = 60


def expire_abandoned(app_module) -> None:
    """Run app.expire_abandoned as the scheduled event does."""
    from chalice.local import LambdaContext
    event = {"version": "0", "id": "local", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": "000000000000", "region": "us-east-1",
             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "resources": [],
             "detail": {}}
    app_module.expire_abandoned(event, LambdaContext("expire_abandoned", memory_size=256))


def main(sweeps: bool = True) -> None:
    # On AWS the join Lambda has CPUs of its own; here it shares them with the API and the
    # emulator, and the appends (someone is recording) come first.
    os.nice(10)
    sys.path.insert(0, str(ROOT))
    import app
    swept_at = 0.0
    while True:
        try:
            if sweeps and time.monotonic() - swept_at >= SWEEP_SECONDS:
                swept_at = time.monotonic()
                expire_abandoned(app)
            deliver_next(app, wait_seconds=1)
        except Exception as error:
            print(f"join job failed: {error!r}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        main(sweeps="--no-sweep" not in sys.argv[1:])
    except KeyboardInterrupt:
        pass
