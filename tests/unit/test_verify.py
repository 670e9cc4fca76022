import pytest

from chalicelib.errors import NotPlayable
from chalicelib.media import verify
from chalicelib.media.verify import Window, decode_windows, edge_windows


def test_the_duration_check_allows_two_percent_or_a_fifth_of_a_second():
    verify.check_duration(10.19, 10.0, "x")
    verify.check_duration(100.0, 98.5, "x")
    with pytest.raises(NotPlayable, match="lasts 10.30 s"):
        verify.check_duration(10.3, 10.0, "x")
    with pytest.raises(NotPlayable, match="lasts 97.00 s but x add up to 100.00 s"):
        verify.check_duration(97.0, 100.0, "x")
    with pytest.raises(NotPlayable, match="duration of the joined video is unknown"):
        verify.check_duration(None, 3.0, "x")


def test_short_videos_are_decoded_whole_and_long_ones_at_start_and_end():
    assert decode_windows(60.0) == [Window(0.0, None)]
    assert decode_windows(verify.FULL_DECODE_SECONDS) == [Window(0.0, None)]
    assert decode_windows(None) == [Window(0.0, None)]
    assert decode_windows(1800.0) == [Window(0.0, verify.SAMPLE_SECONDS),
                                      Window(1800.0 - verify.SAMPLE_SECONDS, None)]


def test_a_composed_video_is_decoded_at_its_first_and_last_seconds_whatever_its_length():
    assert edge_windows(60.0) == [Window(0.0, verify.SAMPLE_SECONDS), Window(55.0, None)]
    assert edge_windows(2 * verify.SAMPLE_SECONDS) == [Window(0.0, None)]
    assert edge_windows(None) == [Window(0.0, None)]


def test_a_composed_video_must_end_where_its_head_says():
    verify.check_ends_where_stated(599.95, 600.02)  # the last frame's duration, rounded
    for end in (588.0, None):
        with pytest.raises(NotPlayable, match="its head says it lasts 600.02 s"):
            verify.check_ends_where_stated(end, 600.02)
