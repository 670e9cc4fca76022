"""bench/cost.py counts what a recording does: 30 s of a real WebM stream through the real
service on moto, at two timeslices. Its counts must be those the README states for an append
(one S3 write, one DynamoDB write), and its per-append terms must follow the number of chunks.
No timing is asserted."""
import os

import pytest

from bench import cost
from chalicelib import aws
from chalicelib.settings import get_settings
from tests.integration.test_segments import long_recording


@pytest.fixture
def own_environment():
    """bench.cost sets the stage's variables in os.environ, as a run of its own would; put
    the test session's back afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()
    aws.reset()


def by_name(result: dict) -> dict:
    return {term.name.split(" (")[0]: term for term in result["terms"]}


def test_counts_per_append_and_scaling_with_the_timeslice(own_environment):
    data = long_recording()  # about 19 MB in 30 s: folds happen, as in a real recording
    bitrate_kbps = len(data) * 8 // 1000 // 30
    one = cost.simulate("prod", 1000, bitrate_kbps, 30, data)
    two = cost.simulate("prod", 2000, bitrate_kbps, 30, data)

    # Each append: exactly one S3 PUT (the chunk) and one DynamoDB write (the claim), and
    # no read; the join request is queued once per recording, not per append.
    for measured in (one, two):
        assert measured.calls_per_append["s3.PutObject"] == 1
        assert measured.calls_per_append["dynamodb.UpdateItem"] == 1
        assert "dynamodb.GetItem" not in measured.calls_per_append
        assert measured.calls_per_append["sqs.SendMessage"] < 0.1
        assert measured.segments >= 2  # the recording was folded while it went on
        assert measured.join_method == "segments"
        # Every join message queued was delivered, received and deleted once.
        calls = {}
        for phase in measured.calls.values():
            for name, count in phase.items():
                calls[name] = calls.get(name, 0) + count
        joins = sum(len(w) for kind, w in measured.invocations.items() if kind.startswith("join"))
        assert calls["sqs.ReceiveMessage"] == calls["sqs.DeleteMessage"] == joins
        assert calls["sqs.SendMessage"] == joins

    assert (one.chunks, two.chunks) == (30, 15)
    assert len(one.invocations["api: append"]) == 30 and len(two.invocations["api: append"]) == 15

    # Priced per recorded hour: halving the chunks halves the per-append terms.
    before, after = by_name(cost.model(one, 60, 30)), by_name(cost.model(two, 60, 30))
    assert before["S3 PUT of each chunk"].count == 3600
    assert after["S3 PUT of each chunk"].count == 1800
    assert after["API Gateway requests"].count == pytest.approx(
        before["API Gateway requests"].count / 2, rel=0.01)
    assert after["DynamoDB writes"].count < 0.7 * before["DynamoDB writes"].count
    # What does not depend on the timeslice does not change with it: the bytes stored.
    assert cost.model(one, 60, 30)["storage"].count == pytest.approx(
        cost.model(two, 60, 30)["storage"].count, rel=0.05)
