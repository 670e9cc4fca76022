"""What the service measures, as CloudWatch metrics: the one module that emits them.

The use cases and the join job call the functions below with plain facts (a chunk of so
many bytes was appended, a join by this method took so long); nothing else in the code
knows about metrics. They are written in CloudWatch's embedded metric format (EMF): JSON
lines on stdout that CloudWatch Logs turns into metrics, so no API call is made and none
can fail or slow a request. Powertools' EMF provider writes them; `flush()` prints what an
invocation gathered, and `chalicelib.observability` calls it at the end of every
invocation (route, join batch, schedule).

Outside Lambda (`make run`, the local worker, the tests) the lines go to stdout too, where
nothing reads them; POWERTOOLS_METRICS_DISABLED=true (powertools' own switch) drops them.

Metrics, in the namespace POWERTOOLS_METRICS_NAMESPACE (default VideoManagementApi), each
with the `service` dimension (POWERTOOLS_SERVICE_NAME):
- ChunksAppended (Count), ChunkBytesAppended (Bytes): a chunk or piece committed; a retry
  of the chunk committed last stores nothing and is not counted.
- JoinSeconds (Seconds): a join that made the video ready, from preparing to recording it;
  TimeToReadySeconds (Seconds): from the last chunk's append to ready. Both also by
  `join_method` (segments, remux, concat, reencode).
- JoinBytesMoved (Bytes): what such a join read from and wrote to S3 through this process
  (chunks, segments, the parts it sent, the compiled file and poster it uploaded);
  JoinBytesCopiedInS3 (Bytes): what S3 copied for it server-side (UploadPartCopy of the
  segments), which never passes through here. Both also by `join_method`. On the emulator a
  copy takes as long as a PUT; these say what a join costs on S3.
- JoinFailures (Count): a join that failed the video, also by `failure`: `not_playable`
  (the chunks are not a video: the client's doing), `abandoned` (started too often, out of
  time or memory) or `fault` (a fault of the join code: worth an alarm).
- JoinMessageFailures (Count): a join message reported back to SQS as failed, to come back
  (chalicelib.join_messages), also by `reason`: `unreadable` (it will end in the
  dead-letter queue), `interrupted` (an AWS outage; retried) or `error`. With partial batch
  responses these are not Lambda errors: this is where they are counted.
"""
import os
import threading

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

DEFAULT_NAMESPACE = "VideoManagementApi"
DEFAULT_SERVICE = "video-management-api"

# One EMF object per set of dimensions (EMF gives all metrics of an object the same
# dimensions); gathered during an invocation, printed and dropped by flush(). chalice local
# serves requests on threads, hence the lock.
_sets: dict[tuple, AmazonCloudWatchEMFProvider] = {}
_lock = threading.Lock()


def chunk_appended(size: int) -> None:
    """A new chunk of `size` bytes is committed (an append or a piece)."""
    _add((), "ChunksAppended", MetricUnit.Count, 1)
    _add((), "ChunkBytesAppended", MetricUnit.Bytes, size)


def video_ready(join_method: str, join_seconds: float, seconds_since_last_chunk: float,
                bytes_moved: int, bytes_copied_in_s3: int) -> None:
    """A join made the video ready: it took `join_seconds`; the last chunk had arrived
    `seconds_since_last_chunk` before (what a viewer who waits for the video waits); it
    moved `bytes_moved` through this process (read and written) and had S3 copy
    `bytes_copied_in_s3`."""
    dimensions = (("join_method", join_method),)
    _add(dimensions, "JoinSeconds", MetricUnit.Seconds, round(join_seconds, 3))
    _add(dimensions, "TimeToReadySeconds", MetricUnit.Seconds, round(max(0.0, seconds_since_last_chunk), 3))
    _add(dimensions, "JoinBytesMoved", MetricUnit.Bytes, bytes_moved)
    _add(dimensions, "JoinBytesCopiedInS3", MetricUnit.Bytes, bytes_copied_in_s3)


def join_failed(failure: str) -> None:
    """A join failed the video: `not_playable`, `abandoned` or `fault`."""
    _add((("failure", failure),), "JoinFailures", MetricUnit.Count, 1)


def join_message_failed(reason: str) -> None:
    """A join message is reported as failed: `unreadable`, `interrupted` or `error`."""
    _add((("reason", reason),), "JoinMessageFailures", MetricUnit.Count, 1)


def flush() -> None:
    """Print what this invocation measured (nothing when it measured nothing) and start
    over. Printing honours POWERTOOLS_METRICS_DISABLED; the gathered values go either way."""
    with _lock:
        sets = list(_sets.values())
        _sets.clear()
    for metric_set in sets:
        # Empty when powertools printed it on its own (it does at 100 values) since: an
        # empty flush would print a warning instead.
        if metric_set.metric_set:
            metric_set.flush_metrics()


def _add(dimensions: tuple, name: str, unit: MetricUnit, value: float) -> None:
    with _lock:
        metric_set = _sets.get(dimensions)
        if metric_set is None:
            metric_set = _sets[dimensions] = _new_set(dimensions)
        metric_set.add_metric(name=name, unit=unit, value=value)


def _new_set(dimensions: tuple) -> AmazonCloudWatchEMFProvider:
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
    metric_set = AmazonCloudWatchEMFProvider(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
        service=service)
    for name, value in dimensions:
        metric_set.add_dimension(name=name, value=value)
    if dimensions:
        # The same values also under the service alone: the total across join methods (or
        # failures) is then a metric of its own, for a graph or an alarm.
        metric_set.add_dimensions(service=service)
    return metric_set
