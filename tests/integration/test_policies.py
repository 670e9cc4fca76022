"""The IAM policies in .chalice/ grant each function every action it calls, and the routes
no more than the routes need.

A full life on moto (appends, a piece, playback, a delete; a fold and the joins; the expiry
sweep) records each AWS operation the adapters make, function by function; each must map to
an action that function's policy allows. moto does not enforce IAM, so without this a
missing action (s3:ListBucket, which makes a missing key read as 404 rather than 403) would
show only on AWS."""
import json

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


# Each function's policy file, per stage (.chalice/config.json names them).
FUNCTIONS = {"api_handler": "policy-{stage}.json", "join_videos": "policy-join-{stage}.json",
             "expire_abandoned": "policy-expire-{stage}.json"}


def allowed(function: str, stage: str) -> set[str]:
    name = FUNCTIONS[function].format(stage=stage)
    policy = json.loads((ROOT / ".chalice" / name).read_text())
    return {action for statement in policy["Statement"] if statement["Effect"] == "Allow"
            for action in statement["Action"]}


class Calls:
    """The AWS operations made since the last take()."""

    def __init__(self):
        self.seen: set[str] = set()
        for client in (aws.s3(), aws.sqs(), aws.videos_table().meta.client):
            client.meta.events.register("before-call.*.*", self._note)

    def _note(self, model, **_):
        self.seen.add(f"{model.service_model.endpoint_prefix}.{model.name}")

    def take(self) -> set[str]:
        taken, self.seen = self.seen, set()
        return taken


def missing(function: str, operations: set[str]) -> dict:
    return {f"{stage}: {op}": needed(op) for stage in ("dev", "prod") for op in sorted(operations)
            if not set(needed(op)) <= allowed(function, stage)}


def test_each_function_s_policy_allows_every_call_it_makes_and_the_config_names_them(on_moto):
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for stage in ("dev", "prod"):
        settings = config["stages"][stage]
        assert settings["iam_policy_file"] == FUNCTIONS["api_handler"].format(stage=stage)
        for function in ("join_videos", "expire_abandoned"):
            assert settings["lambda_functions"][function]["iam_policy_file"] == (
                FUNCTIONS[function].format(stage=stage))
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
    assert {"s3.CopyObject", "s3.ListObjectsV2", "s3.ListMultipartUploads", "dynamodb.DeleteItem",
            "sqs.SendMessage"} <= api_calls
    assert {"s3.UploadPartCopy", "s3.CompleteMultipartUpload", "s3.ListObjectsV2",
            "sqs.ReceiveMessage"} <= join_calls
    assert {"dynamodb.Scan", "dynamodb.DeleteItem", "s3.ListObjectsV2"} <= expire_calls
    assert "dynamodb:Scan" not in allowed("api_handler", "prod") | allowed("join_videos", "prod")
    assert "sqs:ReceiveMessage" not in allowed("api_handler", "prod")
