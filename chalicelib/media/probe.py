"""What a media file holds: its duration and streams, read from what `ffmpeg -i` prints
(the layer has no ffprobe)."""
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stream:
    kind: str  # "video" or "audio"
    codec: str
    profile: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None
    sample_rate: int | None = None
    channels: str | None = None

    def describe(self) -> str:
        if self.kind == "video":
            return f"video {self.codec} {self.width}x{self.height} at {self.frame_rate} fps"
        return f"audio {self.codec} {self.sample_rate} Hz {self.channels}"


@dataclass(frozen=True)
class MediaInfo:
    duration: float | None
    streams: tuple[Stream, ...] = field(default_factory=tuple)

    @property
    def video(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "video"), None)

    @property
    def audio(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "audio"), None)

    def describe(self) -> str:
        return " + ".join(s.describe() for s in self.streams) or "no streams"


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #\d+:\d+[^:]*: (Video|Audio): (\w+)(?: \(([^)]*)\))?(.*)")
_SIZE = re.compile(r", (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r", ([\d.]+(?:k)?) fps")
_RATE = re.compile(r", (\d+) Hz, ([^,]+)")


def parse_probe(text: str) -> MediaInfo:
    duration = None
    match = _DURATION.search(text)
    if match:
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    streams = []
    for kind, codec, profile, rest in _STREAM.findall(text):
        profile = profile or None
        if kind == "Video":
            size = _SIZE.search(rest)
            fps = _FPS.search(rest)
            streams.append(Stream("video", codec, profile,
                                  width=int(size.group(1)) if size else None,
                                  height=int(size.group(2)) if size else None,
                                  frame_rate=fps.group(1) if fps else None))
        else:
            rate = _RATE.search(rest)
            streams.append(Stream("audio", codec, profile,
                                  sample_rate=int(rate.group(1)) if rate else None,
                                  channels=rate.group(2).strip() if rate else None))
    return MediaInfo(duration=duration, streams=tuple(streams))
