"""The join queue's messages as the join Lambda receives them: a batch of SQS records, each
handled on its own, the failed ones reported back.

The answer is Lambda's partial batch response, `{"batchItemFailures": [{"itemIdentifier":
<messageId>}, ...]}` (the trigger must have FunctionResponseTypes ReportBatchItemFailures):
only the messages named come back after their visibility timeout, the rest of the batch is
deleted. A message fails when
- it cannot be read (not our JSON, no video id). No retry will read it either, but it is
  reported all the same: after maxReceiveCount deliveries it lands in the dead-letter
  queue, where someone can look at it, instead of vanishing;
- its join ended without a verdict (an AWS outage, another job's fold got ahead): it comes
  back after RETRY_SECONDS, doubled at each delivery (not after the queue's visibility
  timeout, 90 minutes), and the next delivery goes on from there.
A join that fails the video (not playable, a fault of the join code) is done: the video
records the failure, and a retry would meet it again. A message delivered twice (SQS
delivers at least once) is harmless: the join of chunks already joined does nothing.

Powertools' BatchProcessor keeps the books; each message is logged under its messageId as
correlation id, with its video_id (chalicelib.observability.job_scope).
"""
import functools

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib import observability, telemetry
from chalicelib.adapters.sqs import join_request_of
from chalicelib.errors import FoldSuperseded, StorageUnavailable
from chalicelib.joiner import Joiner
from chalicelib.ports import REENCODE_STEPS, RENDITION, RENDITION_STEPS, JobQueue
from chalicelib.reencodes import Reencodes
from chalicelib.renditions import RenditionJob

logger = Logger(child=True)

RETRY_SECONDS = 30  # the first retry of an interrupted join; then 60, 120... at most 900

# A batch whose every message failed is answered like any other. Raising instead (the
# default) would return the same messages to the queue, as a failed invocation: a Lambda
# error and a traceback for what is an ordinary retry.
_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def join_batch(event: dict, joiner: Joiner, queue: JobQueue,
               renditions: RenditionJob | None = None, reencodes: Reencodes | None = None) -> dict:
    """Run the job of each message of an SQS event (its raw dict), one after another: a
    join, a step of a join's re-encode (REENCODE_STEPS), or (kind "rendition" and its
    steps) a step of the rendition job. Without the job a message asks for, it fails (it
    is not this caller's to drop)."""
    return process_partial_response(event=event, processor=_processor,
                                    record_handler=functools.partial(_join, joiner=joiner, queue=queue,
                                                                     renditions=renditions,
                                                                     reencodes=reencodes))


def retry_delay(deliveries: int | None) -> int:
    return min(RETRY_SECONDS * 2 ** ((deliveries or 1) - 1), 900)


def _join(record: SQSRecord, joiner: Joiner, queue: JobQueue,
          renditions: RenditionJob | None = None, reencodes: Reencodes | None = None):
    with observability.job_scope(record.message_id):
        deliveries = int(record.attributes.get("ApproximateReceiveCount") or 0) or None
        try:
            request = join_request_of(record.body)
        except (ValueError, KeyError, TypeError) as error:
            # The body is not logged: whatever it holds is not ours to copy into the logs.
            logger.error("unreadable join message: reported as failed, it reaches the "
                         "dead-letter queue after maxReceiveCount deliveries",
                         extra={"error": type(error).__name__, "deliveries": deliveries})
            telemetry.join_message_failed("unreadable")
            raise
        observability.about_video(request.video_id)
        try:
            if request.kind == RENDITION or request.kind in RENDITION_STEPS:
                if renditions is None:
                    raise RuntimeError("a rendition message, and no rendition job to run it")
                outcome = renditions.run(request)
            elif request.kind in REENCODE_STEPS:
                if reencodes is None:
                    raise RuntimeError("a re-encode step, and no re-encode job to run it")
                outcome = reencodes.run(request)
            else:
                outcome = joiner.run(request.video_id, urgent=request.urgent)
        except (StorageUnavailable, FoldSuperseded) as error:
            logger.warning("join interrupted: the message comes back",
                           extra={"error": str(error), "deliveries": deliveries})
            telemetry.join_message_failed("interrupted")
            try:
                queue.retry_after(record.receipt_handle, retry_delay(deliveries))
            except StorageUnavailable:
                pass  # then it comes back after the visibility timeout
            raise
        except Exception:
            logger.exception("join message failed: it comes back", extra={"deliveries": deliveries})
            telemetry.join_message_failed("error")
            raise
        logger.info(f"{request.kind} job", extra={"outcome": outcome.value, "urgent": request.urgent,
                                                  "deliveries": deliveries})
        return outcome
