"""A video's status rules and the media summary, on plain records."""
import dataclasses

from chalicelib.models import JoinMethod, MediaSummary, Status, Video

STALL = 60
MEDIA = MediaSummary(container="webm", content_type="audio/webm", duration=2.5, byte_size=9,
                     join_method=JoinMethod.REMUX, audio_only=True, audio_codec="opus")


def video(**fields) -> Video:
    return dataclasses.replace(Video(1, "h", chunk_count=0, byte_count=0, created_at=1.0,
                                     updated_at=1.0), **fields)


def test_status_follows_the_record():
    assert video().status(1.0, STALL) is Status.EMPTY
    appended = video(chunk_count=1, byte_count=10, join_requested_at=1.0)
    assert appended.status(2.0, STALL) is Status.PROCESSING
    assert appended.status(100.0, STALL) is Status.RECORDING  # the request stalled
    assert video(chunk_count=1, compiled_chunks=1).status(2.0, STALL) is Status.READY
    assert video(chunk_count=2, compiled_chunks=1).status(2.0, STALL) is Status.RECORDING
    assert video(chunk_count=1, failed_chunks=1, error="bad").status(4.0, STALL) is Status.FAILED
    assert video(chunk_count=1, lost_chunks=frozenset({0})).status(2.0, STALL) is Status.EMPTY


def test_a_join_is_running_only_for_the_chunks_stored_now_and_not_forever():
    running = video(chunk_count=3, join_started_at=10.0, joining_chunks=3)
    assert running.joining_now(20.0, STALL)
    assert not running.joining_now(71.0, STALL)  # presumed lost
    assert not dataclasses.replace(running, chunk_count=4).joining_now(20.0, STALL)
    assert running.join_pending(20.0, STALL) and not running.join_pending(71.0, STALL)


def test_a_join_is_needed_while_stored_chunks_are_unaccounted_for():
    assert not video().needs_join()
    assert video(chunk_count=2).needs_join()
    assert not video(chunk_count=2, compiled_chunks=2).needs_join()
    assert not video(chunk_count=2, failed_chunks=2).needs_join()
    assert not video(chunk_count=1, lost_chunks=frozenset({0})).needs_join()


def test_a_join_sees_newer_fold_progress_but_keeps_its_chunks():
    joining = video(chunk_count=5, byte_count=50)
    newer = video(chunk_count=9, segment_count=2, segmented_bytes=40, segments_off="x")
    merged = joining.with_segments_of(newer)
    assert (merged.chunk_count, merged.segment_count, merged.segmented_bytes, merged.segments_off) == (
        5, 2, 40, "x")


def test_the_media_summary_leaves_out_what_is_unknown_and_reads_back():
    assert MEDIA.as_dict() == {"container": "webm", "content_type": "audio/webm", "duration": 2.5,
                               "byte_size": 9, "join_method": "remux", "audio_only": True,
                               "audio_codec": "opus"}
    assert MediaSummary.from_dict({**MEDIA.as_dict(), "retired_field": 1}) == MEDIA
