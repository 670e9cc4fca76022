"""The IAM policies in .chalice/ grant every action the service calls.

A full life on moto (appends, a fold, both joins, a piece, playback, a delete, the expiry
sweep) records each AWS operation the adapters make; each must map to an action the stage's
policy allows. moto does not enforce IAM, so without this a missing action (s3:ListBucket,
which makes a missing key read as 404 rather than 403) shows only on AWS."""
import json

import pytest

from chalicelib import aws
from tests.conftest import ROOT, fixture_chunks
from tests.helpers import record
from tests.integration.test_segments import in_chunks, long_recording

# The IAM actions an API operation needs (https://docs.aws.amazon.com/service-authorization/).
ACTIONS = {
    "s3.HeadObject": ["s3:GetObject"],
    "s3.ListObjectsV2": ["s3:ListBucket"],
    "s3.ListMultipartUploads": ["s3:ListBucketMultipartUploads"],
    "s3.CreateMultipartUpload": ["s3:PutObject"],
    "s3.UploadPart": ["s3:PutObject"],
    "s3.UploadPartCopy": ["s3:PutObject", "s3:GetObject"],
    "s3.CompleteMultipartUpload": ["s3:PutObject"],
    "s3.CopyObject": ["s3:PutObject", "s3:GetObject"],
    "s3.DeleteObjects": ["s3:DeleteObject"],
}


def needed(operation: str) -> list[str]:
    service, name = operation.split(".")
    return ACTIONS.get(operation, [f"{service}:{name}"])


def allowed(stage: str) -> set[str]:
    policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    return {action for statement in policy["Statement"] if statement["Effect"] == "Allow"
            for action in statement["Action"]}


@pytest.fixture
def operations(on_moto):
    seen: set[str] = set()

    def note(model, **_):
        seen.add(f"{model.service_model.endpoint_prefix}.{model.name}")

    for client in (aws.s3(), aws.sqs(), aws.videos_table().meta.client):
        client.meta.events.register("before-call.*.*", note)
    return seen


def test_every_call_of_a_video_s_life_is_allowed_by_each_stage_s_policy(on_moto, operations, tmp_path):
    services = on_moto
    videos, joiner = services.videos, services.joiner
    folded, token = record(services, in_chunks(long_recording()), fold_every=5)
    assert joiner.run(folded) == "joined"  # the segment join: UploadPartCopy
    videos.playback(folded, token)
    videos.finalize(folded, token)
    assert joiner.run(folded) == "up to date"  # removes the chunks and segments
    small, small_token = record(services, fixture_chunks())
    piece = videos.start_piece(small, small_token)
    services.backend.store.client.put_object(Bucket=services.backend.store.bucket,
                                             Key=f"videos/{small}/pieces/{piece.piece_id}", Body=b"x" * 10)
    videos.commit_piece(small, small_token, piece.piece_id)
    videos.status(small, small_token)
    videos.delete(small, small_token)
    services.backend.queue.receive().acknowledge()
    left, _ = record(services, [b"left"])
    videos.clock = lambda: 10**12  # long after the last append
    assert left in videos.expire_abandoned()
    assert {"s3.UploadPartCopy", "s3.CopyObject", "s3.ListObjectsV2", "s3.ListMultipartUploads",
            "dynamodb.Scan", "dynamodb.DeleteItem", "sqs.ReceiveMessage"} <= operations
    for stage in ("dev", "prod"):
        missing = {op: needed(op) for op in sorted(operations) if not set(needed(op)) <= allowed(stage)}
        assert not missing, f"policy-{stage}.json lacks {missing}"
