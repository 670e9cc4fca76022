"""The roles in the deployment template (.chalice/template.json) grant each function every
action it calls, and no function more than it needs.

A full life on moto (appends, a piece, playback, a delete; a fold and the joins; the expiry
sweep) records each AWS operation the adapters make, function by function; each must map to
an action that function's role allows. test_iam_enforced.py runs the same life with IAM
enforced by moto; this one also covers what moto does not enforce (the GetObject a copy needs
on its source, the tagging a tagged write needs)."""
import json

from chalicelib import aws
from tests.conftest import ROOT, fixture_chunks
from tests.deployment import allowed_actions
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
    "s3.ListParts": ["s3:ListMultipartUploadParts"],
    "s3.CopyObject": ["s3:PutObject", "s3:GetObject"],
    "s3.DeleteObjects": ["s3:DeleteObject"],
}


TAGGED = "+tagging"  # an operation that also writes the object's tags


def needed(operation: str) -> list[str]:
    operation, tagged, _ = operation.partition(TAGGED)
    service, name = operation.split(".")
    return ACTIONS.get(operation, [f"{service}:{name}"]) + (["s3:PutObjectTagging"] if tagged else [])


class Calls:
    """The AWS operations made since the last take()."""

    def __init__(self):
        self.seen: set[str] = set()
        for client in (aws.s3(), aws.sqs(), aws.videos_table().meta.client):
            client.meta.events.register("before-parameter-build.*.*", self._note)

    def _note(self, model, params, **_):
        tagged = TAGGED if "Tagging" in params else ""
        self.seen.add(f"{model.service_model.endpoint_prefix}.{model.name}{tagged}")

    def take(self) -> set[str]:
        taken, self.seen = self.seen, set()
        return taken


def test_each_function_s_role_allows_every_call_it_makes(on_moto, packaged_template):
    def missing(function: str, operations: set[str]) -> dict:
        allowed = allowed_actions(packaged_template, function)
        return {op: needed(op) for op in sorted(operations) if not set(needed(op)) <= allowed}

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for stage in ("dev", "prod"):  # the template's roles, not roles chalice would make
        assert config["stages"][stage]["manage_iam_role"] is False
    services, calls = on_moto, Calls()
    videos, joiner, store = services.videos, services.joiner, services.backend.store

    # The routes: a recording, a piece, playback, status, finalize, a delete.
    folded, token = record(services, in_chunks(long_recording()))
    small, small_token = record(services, fixture_chunks())
    piece = videos.start_piece(small, small_token)
    api_calls = calls.take()
    store.client.put_object(Bucket=store.bucket, Key=f"videos/{small}/pieces/{piece.piece_id}", Body=b"x")
    calls.take()  # the client's own PUT, with the presigned URL
    videos.commit_piece(small, small_token, piece.piece_id)
    videos.playback(folded, token)
    videos.status(small, small_token)
    videos.finalize(folded, token)
    videos.delete(small, small_token)
    api_calls |= calls.take()
    assert not missing("api_handler", api_calls)

    # The join: a fold while recording, the segment join, removing a finished video's sources.
    joiner.folder.fold(services.backend.catalog.get(folded))
    while (delivery := services.backend.queue.receive()) is not None:
        joiner.run(delivery.request.video_id, delivery.request.urgent)
        delivery.acknowledge()
    assert joiner.run(folded) == "up to date"
    join_calls = calls.take()
    assert not missing("join_videos", join_calls)

    # The expiry sweep.
    left, _ = record(services, [b"left"])
    calls.take()
    videos.clock = lambda: 10**12  # long after the last append
    assert left in videos.expire_abandoned()
    expire_calls = calls.take()
    assert not missing("expire_abandoned", expire_calls)

    # The life above did reach what each policy had to allow, and no more than needed.
    assert {"s3.PutObject+tagging", "s3.CopyObject+tagging", "s3.ListObjectsV2",
            "s3.ListMultipartUploads", "dynamodb.DeleteItem", "sqs.SendMessage"} <= api_calls
    assert {"s3.UploadPartCopy", "s3.CompleteMultipartUpload", "s3.ListObjectsV2",
            "sqs.ReceiveMessage"} <= join_calls
    assert {"dynamodb.Scan", "dynamodb.DeleteItem", "s3.ListObjectsV2"} <= expire_calls
    def allowed(function):
        return allowed_actions(packaged_template, function)
    assert "dynamodb:Scan" not in allowed("api_handler") | allowed("join_videos")
    assert "sqs:ReceiveMessage" not in allowed("api_handler")
    assert not {"s3:PutObject", "s3:GetObject", "sqs:SendMessage"} & allowed("expire_abandoned")
