"""The metrics (chalicelib.telemetry) the use cases and the join job report, as the EMF lines
printed to stdout that CloudWatch turns into metrics; over the in-memory backend. The
metrics of a join that runs ffmpeg are in tests/integration/test_observability.py."""
import warnings

import pytest
from chalice.test import Client

import app as app_module
from chalicelib import telemetry
from chalicelib.models import JoinOutcome
from tests.conftest import fixture_chunks
from tests.helpers import record
from tests.lambda_events import emf_lines, metric_values


@pytest.fixture(autouse=True)
def metrics_on(monkeypatch):
    """Printed whatever the stage says; nothing left over from another test."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    telemetry.flush()


def printed(capsys) -> str:
    telemetry.flush()
    return capsys.readouterr().out


def test_an_appended_chunk_is_counted_with_its_bytes_and_a_retry_is_not(memory, capsys):
    chunks = fixture_chunks()
    video_id, token = record(memory, chunks[:2])
    memory.videos.append(video_id, token, chunks[1])  # the last chunk again: a retry
    out = printed(capsys)
    assert metric_values(out, "ChunksAppended") == [1.0, 1.0]
    assert metric_values(out, "ChunkBytesAppended") == [float(len(chunks[0])), float(len(chunks[1]))]
    [emf] = emf_lines(out)
    assert emf["_aws"]["CloudWatchMetrics"][0] == {
        "Namespace": "VideoManagementApi", "Dimensions": [["service"]],
        "Metrics": [{"Name": "ChunksAppended", "Unit": "Count"},
                    {"Name": "ChunkBytesAppended", "Unit": "Bytes"}]}
    assert emf["service"] == "video-management-api"


def test_a_committed_piece_is_counted_as_a_chunk(memory, capsys):
    from tests.unit.test_pieces import uploaded
    video_id, token = record(memory, [])
    piece = memory.videos.start_piece(video_id, token)
    uploaded(memory, piece, b"x" * 1000)
    memory.videos.commit_piece(video_id, token, piece.piece_id)
    assert metric_values(printed(capsys), "ChunkBytesAppended") == [1000.0]


def test_the_namespace_comes_from_powertools_variable(memory, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "VideoApiStaging")
    record(memory, [b"chunk"])
    [emf] = emf_lines(printed(capsys))
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "VideoApiStaging"


def test_nothing_measured_prints_nothing_and_warns_nothing(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # powertools warns on a flush with no metrics
        assert printed(capsys) == ""


def test_a_hundred_values_printed_on_the_way_are_not_printed_again(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(100):  # EMF's limit per object: powertools prints them at once
            telemetry.join_failed("not_playable")
        assert metric_values(printed(capsys), "JoinFailures") == [1.0] * 100


def test_disabled_metrics_print_nothing_and_are_not_kept_for_later(memory, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    record(memory, [b"chunk"])
    assert printed(capsys) == ""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    assert printed(capsys) == ""


def test_a_join_that_fails_the_video_is_counted_by_kind(clocked, capsys):
    not_playable, _ = record(clocked, [b"not a recording"])
    assert clocked.joiner.run(not_playable) is JoinOutcome.FAILED

    vanishing, _ = record(clocked, fixture_chunks())
    catalog, clock = clocked.backend.catalog, clocked.videos.clock
    for attempt in (1, 2, 3):  # each started, then its worker died
        catalog.start_join(vanishing, clock.now, attempt)
        clock.now += clocked.settings.join_stall_seconds
    assert clocked.joiner.run(vanishing) is JoinOutcome.FAILED

    class Broken:
        def prepare(self, video, work_dir):
            raise KeyError("a bug")

    clocked.joiner.strategies = [Broken()]
    faulty, _ = record(clocked, fixture_chunks())
    assert clocked.joiner.run(faulty) is JoinOutcome.FAILED

    out = printed(capsys)
    for failure in ("not_playable", "abandoned", "fault"):
        assert metric_values(out, "JoinFailures", failure=failure) == [1.0], failure
    [fault] = [emf for emf in emf_lines(out) if emf.get("failure") == "fault"]
    # Also under the service alone: the total of all kinds is a metric of its own.
    assert fault["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["failure", "service"], ["service"]]


@pytest.fixture
def client(memory, monkeypatch):
    monkeypatch.setattr(app_module, "services", lambda: memory)
    with Client(app_module.app) as test_client:
        yield test_client


def test_each_invocation_flushes_its_metrics_when_it_ends(client, capsys):
    created = client.http.post("/create_video").json_body
    capsys.readouterr()  # what came before
    client.http.post(f"/append_video/{created['video_id']}", body=b"chunk",
                     headers={"Authorization": f"Bearer {created['upload_token']}",
                              "Content-Type": "video/webm"})
    out = capsys.readouterr().out  # no flush by the test: the invocation did it
    assert metric_values(out, "ChunksAppended") == [1.0]
    assert metric_values(printed(capsys), "ChunksAppended") == []  # and started over
