"""What a joined video must pass before it is ready: its duration matches what went in,
and it decodes without errors over the windows `decode_windows` picks (`edge_windows` for a
video composed from segments, whose every frame header its fold has read). Every join
strategy checks with these, so one rule decides what is decoded, whatever made the video."""
from dataclasses import dataclass

from chalicelib.errors import NotPlayable

# A join must be this close to the duration of what went in: 2 % or 0.2 s, whichever is more.
DURATION_TOLERANCE = (0.02, 0.2)
# Up to this length the whole output is decoded to check it; longer ones are checked at
# their start and end (a stream copy does not touch the packets in between, and damage to
# the container there shows as remux or fold errors, which fail the join already).
FULL_DECODE_SECONDS = 120.0
SAMPLE_SECONDS = 5.0
# Audio is continuous in a recording: a longer silence between two packets means bytes are
# missing (a chunk cut short, then sent again whole after it). Video is not judged this
# way: a screen recording legitimately sends no frame while nothing moves.
LARGEST_AUDIO_GAP_SECONDS = 0.2


@dataclass(frozen=True)
class Window:
    start: float  # seconds from the video's start
    seconds: float | None  # how much to decode; None: to the end


def decode_windows(duration: float | None) -> list[Window]:
    if duration is None or duration <= FULL_DECODE_SECONDS:
        return [Window(0.0, None)]
    return [Window(0.0, SAMPLE_SECONDS), Window(max(0.0, duration - SAMPLE_SECONDS), None)]


def edge_windows(duration: float | None) -> list[Window]:
    """The first and last SAMPLE_SECONDS, whatever the length: what a video composed from
    segments is decoded over. Its fold has read every frame's header (tracks, times, the
    audio's continuity), and S3 copied the frames in between byte for byte, so decoding
    them again would only add time to ready."""
    if duration is None or duration <= 2 * SAMPLE_SECONDS:
        return [Window(0.0, None)]
    return [Window(0.0, SAMPLE_SECONDS), Window(duration - SAMPLE_SECONDS, None)]


def check_decodes(ffmpeg, path: str, duration: float | None) -> None:
    """Decode a joined file over its windows; NotPlayable at the first error."""
    for window in decode_windows(duration):
        ffmpeg.decode(path, start=window.start, seconds=window.seconds)


def _agree(actual: float, expected: float) -> bool:
    """Two durations are the same within DURATION_TOLERANCE."""
    relative, absolute = DURATION_TOLERANCE
    return abs(actual - expected) <= max(absolute, relative * expected)


def check_duration(actual: float | None, expected: float | None, what: str) -> None:
    if actual is None or expected is None:
        raise NotPlayable(f"the duration of the joined video is unknown (expected {expected} s)")
    if not _agree(actual, expected):
        raise NotPlayable(f"the joined video lasts {actual:.2f} s but {what} "
                          f"add up to {expected:.2f} s")


def check_ends_where_stated(end: float | None, stated: float | None) -> None:
    """A video composed behind a new head: its last frames end where the head says it does
    (its Duration, or its moov's), within DURATION_TOLERANCE. Both come from the fold's
    index; this reads the frames themselves, so an index that went wrong is caught."""
    if end is None or stated is None or not _agree(end, stated):
        raise NotPlayable(f"the video's frames end at {end if end is None else round(end, 2)} s "
                          f"but its head says it lasts {stated} s")


def check_audio_continuous(ffmpeg, path: str) -> None:
    """NotPlayable where the audio stops for more than LARGEST_AUDIO_GAP_SECONDS."""
    previous_end = None
    for start, duration in ffmpeg.audio_packets(path):
        if previous_end is not None:
            audio_gap(previous_end, start)
        previous_end = max(previous_end or 0.0, start + duration)


def audio_gap(previous_end: float, start: float) -> None:
    """NotPlayable when an audio packet starts too long after the one before ended."""
    if start - previous_end > LARGEST_AUDIO_GAP_SECONDS:
        raise NotPlayable(f"the audio stops for {start - previous_end:.2f} s at {previous_end:.2f} s: "
                          "a piece of the recording is missing (a chunk cut short?)")
