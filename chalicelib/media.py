"""Everything that runs ffmpeg: joining chunks into one seekable file, probing it, a poster.

This is the only module that builds ffmpeg command lines (with ffmpeg-python).

How chunks become a video (see the project's design notes):
- A chunk that starts with a container header starts a new file; a chunk that does not
  continues the file before it (MediaRecorder with a timeslice cuts one stream at arbitrary
  bytes, and only its first piece has the header). The bytes of one file are piped into
  ffmpeg in order and stream-copied into a file on disk: on a seekable output the muxer
  writes Duration and Cues (WebM/Matroska) or a moov at the front (MP4).
- Several files (a client that restarts its recorder per chunk) are joined with the concat
  demuxer when their streams match, otherwise re-encoded with the concat filter.
"""
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import ffmpeg

from chalicelib import containers
from chalicelib.containers import Container
from chalicelib.errors import NotPlayable

# ffmpeg's own words are kept short in a status: the last lines say what went wrong.
_ERROR_LINES = 4


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


@dataclass(frozen=True)
class JoinedVideo:
    path: str
    container: Container
    info: MediaInfo
    files: int  # how many complete files the chunks held
    # "remux" (one stream), "segments" (one stream assembled from folded segments, see
    # chalicelib.segments), "concat" (stream copy of files) or "reencode"
    method: str

    @property
    def content_type(self) -> str:
        if self.info.video is None:  # an audio-only recording
            return self.container.content_type.replace("video/", "audio/")
        return self.container.content_type


@dataclass(frozen=True)
class _Part:
    path: str
    container: Container
    info: MediaInfo


# Joins of files that differ are re-encoded to this one format: H.264 and AAC in MP4 plays
# everywhere, and libx264 is the fastest good encoder in the layer's ffmpeg.
REENCODE_CONTAINER = containers.MP4
REENCODE_OPTIONS = {"c:v": "libx264", "preset": "veryfast", "crf": 23, "pix_fmt": "yuv420p",
                    "c:a": "aac", "b:a": "128k", "ar": 48000, "ac": 2, "movflags": "+faststart"}
# A join must be this close to the duration of what went in: 2 % or 0.2 s, whichever is more.
DURATION_TOLERANCE = (0.02, 0.2)
# Up to this length the whole output is decoded to check it; longer ones are checked at
# their start and end (a stream copy does not touch the packets in between, and damage to
# the container there shows as remux errors, which fail the join already).
FULL_DECODE_SECONDS = 120.0
SAMPLE_SECONDS = 5.0


class Ffmpeg:
    def __init__(self, binary: str, allow_reencode: bool = True):
        self.binary = binary
        self.allow_reencode = allow_reencode

    # --- running ---------------------------------------------------------------------

    def _command(self, stream, loglevel: str = "error") -> list[str]:
        return stream.global_args("-hide_banner", "-nostats", "-loglevel", loglevel).compile(
            cmd=self.binary, overwrite_output=True)

    def _run(self, stream, what: str, ignore: tuple[bytes, ...] = ()) -> None:
        """Run to completion; any error ffmpeg reports fails the step, even with exit 0,
        except lines that contain one of `ignore`."""
        result = subprocess.run(self._command(stream), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        errors = _without(result.stderr, ignore)
        if result.returncode != 0 or errors.strip():
            raise NotPlayable(f"{what}: {_last_lines(errors or result.stderr)}")

    def remux_stream(self, blocks: Iterable[bytes], container: Container, output: str) -> float:
        """Pipe one file's bytes into ffmpeg and stream-copy them into a seekable file.

        Returns the last timestamp ffmpeg wrote (seconds): the stream's own idea of its length.
        """
        options = {"c": "copy", "map": "0", "f": container.name, "fflags": "+bitexact"}
        if container is containers.MP4:
            options["movflags"] = "+faststart"
        progress = output + ".progress"
        stream = ffmpeg.input("pipe:0").output(output, **options).global_args("-progress", progress)
        written = unread = 0
        with tempfile.TemporaryFile() as log:
            # Warnings too, each line tagged with its level: time running backwards in a
            # stream is only a warning to ffmpeg, but it means chunks out of order.
            command = self._command(stream, loglevel="level+warning")
            process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=log)
            try:
                for block in blocks:
                    if unread:
                        unread += len(block)
                        continue
                    try:
                        process.stdin.write(block)
                        written += len(block)
                    except BrokenPipeError:
                        unread = len(block)
                if not unread:
                    process.stdin.close()
            except BaseException:
                process.kill()
                process.wait()
                raise
            returncode = process.wait()
            log.seek(0)
            messages = log.read()
        errors = _without(_at_level(messages, b"[error]", b"[fatal]", b"[panic]"), _CUT_END)
        if returncode != 0 or errors.strip():
            raise NotPlayable(f"the recording could not be read: {_last_lines(errors or messages)}")
        backwards = _time_runs_backwards(messages)
        if backwards:
            raise NotPlayable(f"the chunks are out of order or damaged: {backwards}")
        if unread:
            raise NotPlayable(f"ffmpeg stopped reading the recording after {written} bytes; "
                              f"{unread} more bytes were not part of it")
        return _last_progress_time(progress)

    def probe(self, path: str) -> MediaInfo:
        """Duration and streams, from what `ffmpeg -i` prints (ffprobe is not in the layer)."""
        result = subprocess.run([self.binary, "-hide_banner", "-i", path],
                                stdin=subprocess.DEVNULL, capture_output=True)
        return parse_probe(result.stderr.decode("utf-8", "replace"))

    def poster(self, video: str, output: str, at_seconds: float) -> None:
        source = ffmpeg.input(video, ss=at_seconds)
        self._run(source.output(output, vframes=1, fflags="+bitexact", **{"q:v": 3}),
                  "no poster frame")

    def check_decodes(self, path: str, duration: float) -> None:
        """Decode the video (all of it, or its start and end when long): any error fails."""
        if duration <= FULL_DECODE_SECONDS:
            windows = [{}]
        else:
            windows = [{"t": SAMPLE_SECONDS}, {"ss": max(0.0, duration - SAMPLE_SECONDS)}]
        for window in windows:
            self.decode(path, **window)

    def decode(self, path: str, **window) -> None:
        """Decode a file, or the window of it (ffmpeg's ss and t): any error fails."""
        self._run(ffmpeg.input(path, **window).output("-", f="null"),
                  "the joined video does not decode cleanly", ignore=_NULL_MUXER)

    # --- joining -------------------------------------------------------------------

    def join(self, chunks: Iterable[bytes | Iterator[bytes]], work_dir: str) -> JoinedVideo:
        """Join chunks (each given as bytes or as an iterator of blocks), in order, into one
        file whose duration matches what went in. Whether it decodes is `check_decodes`'
        to say (the join job runs it while the file uploads)."""
        parts: list[_Part] = []
        for index, blocks in enumerate(_ChunkFiles(chunks)):
            container = containers.sniff(blocks.head[:containers.SNIFF_BYTES])
            if container is None:
                raise NotPlayable(
                    "the first chunk does not start with a WebM, Matroska or MP4 header"
                    if index == 0 else "a chunk holds an unknown kind of file")
            path = os.path.join(work_dir, f"part-{index:06d}.{container.extension}")
            stream_end = self.remux_stream(blocks, container, path)
            info = self.probe(path)
            if not info.streams or not info.duration or stream_end is None:
                raise NotPlayable(f"file {index + 1} of the recording holds no complete "
                                  "audio or video frame")
            # The file must reach as far as its stream's timestamps did. It may last longer:
            # Chromium's video track can end well before its audio after a capture stall.
            _check_duration(min(info.duration, stream_end), stream_end,
                            f"file {index + 1}'s timestamps")
            parts.append(_Part(path, container, info))
        if not parts:
            raise NotPlayable("there are no chunks to join")
        if len(parts) == 1:  # one stream: its remux is the video, probed and checked above
            only = parts[0]
            return JoinedVideo(path=only.path, container=only.container, info=only.info,
                               files=1, method="remux")
        if _same_format(parts):
            path, container, method = self._concat_copy(parts, work_dir), parts[0].container, "concat"
        elif self.allow_reencode:
            path, container, method = self._concat_reencode(parts, work_dir), REENCODE_CONTAINER, "reencode"
        else:
            raise NotPlayable("the chunks are complete files whose streams differ ("
                              + _describe_difference(parts) + ") and re-encoding is off")
        info = self.probe(path)
        _check_duration(info.duration, sum(p.info.duration for p in parts), "the parts joined")
        return JoinedVideo(path=path, container=container, info=info, files=len(parts),
                           method=method)

    def _concat_copy(self, parts: list[_Part], work_dir: str) -> str:
        container = parts[0].container
        listing = os.path.join(work_dir, "files.txt")
        with open(listing, "w") as out:
            for part in parts:
                out.write(f"file '{part.path}'\n")
        output = os.path.join(work_dir, f"joined.{container.extension}")
        options = {"c": "copy", "map": "0", "f": container.name, "fflags": "+bitexact"}
        if container is containers.MP4:
            options["movflags"] = "+faststart"
        self._run(ffmpeg.input(listing, f="concat", safe=0).output(output, **options),
                  "the files could not be joined")
        return output

    def _concat_reencode(self, parts: list[_Part], work_dir: str) -> str:
        """Re-encode files that differ into one format with the concat filter: every video
        scaled and padded to the first one's frame, missing tracks filled with black or
        silence so each part keeps its length."""
        with_video = [p.info.video for p in parts if p.info.video]
        has_audio = any(p.info.audio for p in parts)
        width, height = _even(with_video[0].width or 1280), _even(with_video[0].height or 720)
        rate = _frame_rate(with_video[0].frame_rate) if with_video else None
        streams = []
        for part in parts:
            source = ffmpeg.input(part.path)
            seconds = part.info.duration
            if with_video:
                if part.info.video:
                    video = (source.video
                             .filter("scale", width, height, force_original_aspect_ratio="decrease")
                             .filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2")
                             .filter("setsar", 1).filter("fps", rate))
                else:
                    video = ffmpeg.input(f"color=c=black:s={width}x{height}:r={rate}:d={seconds}",
                                         f="lavfi").video
                streams.append(video.filter("format", "yuv420p"))
            if has_audio:
                if part.info.audio:
                    audio = source.audio.filter("aresample", 48000).filter(
                        "aformat", sample_fmts="fltp", channel_layouts="stereo")
                else:
                    audio = ffmpeg.input(f"anullsrc=r=48000:cl=stereo:d={seconds}", f="lavfi").audio
                streams.append(audio)
        joined = ffmpeg.concat(*streams, v=int(bool(with_video)), a=int(has_audio)).node
        outputs = [joined[i] for i in range(int(bool(with_video)) + int(has_audio))]
        output = os.path.join(work_dir, f"joined.{REENCODE_CONTAINER.extension}")
        options = dict(REENCODE_OPTIONS, f=REENCODE_CONTAINER.name, fflags="+bitexact")
        self._run(ffmpeg.output(*outputs, output, **options), "the files could not be re-encoded")
        return output


def _check_duration(actual: float | None, expected: float | None, what: str) -> None:
    if actual is None or expected is None:
        raise NotPlayable(f"the duration of the joined video is unknown (expected {expected} s)")
    relative, absolute = DURATION_TOLERANCE
    if abs(actual - expected) > max(absolute, relative * expected):
        raise NotPlayable(f"the joined video lasts {actual:.2f} s but {what} "
                          f"add up to {expected:.2f} s")


def _same_format(parts: list[_Part]) -> bool:
    return len({p.container for p in parts}) == 1 and len({p.info.streams for p in parts}) == 1


def _even(pixels: int) -> int:
    return pixels - pixels % 2


def _frame_rate(text: str | None) -> float:
    try:
        rate = float(text.rstrip("k")) * (1000 if text.endswith("k") else 1)
    except (AttributeError, ValueError):
        return 30.0
    return rate if 1 <= rate <= 120 else 30.0


def _last_progress_time(progress_path: str) -> float | None:
    """The last out_time of an ffmpeg -progress file, in seconds."""
    try:
        with open(progress_path) as progress:
            times = [line.split("=", 1)[1] for line in progress if line.startswith("out_time_us=")]
    except FileNotFoundError:
        return None
    finally:
        if os.path.exists(progress_path):
            os.unlink(progress_path)
    values = [int(t) for t in times if t.strip().lstrip("-").isdigit()]
    return values[-1] / 1e6 if values else None


class _File:
    """The blocks of one file within the chunk sequence. Iterating it pulls chunks until the
    next chunk that starts with a header, which it leaves to the next file."""

    def __init__(self, head: bytes, rest: Iterator[bytes], chunks: "_ChunkFiles"):
        self.head = head
        self._rest = rest
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        yield from self._rest
        for first, blocks in self._chunks.continuations():
            yield first
            yield from blocks


class _ChunkFiles:
    """Groups chunks into files: a chunk that starts with a header starts the next file.

    Chunks are read in order, once; a file is consumed before the next one is looked at, so
    at most one chunk's first block is held beyond what ffmpeg is reading.
    """

    def __init__(self, chunks: Iterable[bytes | Iterator[bytes]]):
        self._chunks = iter(chunks)
        self._next_file: tuple[bytes, Iterator[bytes]] | None = None

    def _next_chunk(self) -> tuple[bytes, Iterator[bytes]] | None:
        for chunk in self._chunks:
            blocks = iter([chunk]) if isinstance(chunk, bytes) else iter(chunk)
            first = next(blocks, b"")
            if first:
                return first, blocks
        return None

    def continuations(self) -> Iterator[tuple[bytes, Iterator[bytes]]]:
        while self._next_file is None:
            chunk = self._next_chunk()
            if chunk is None:
                return
            if containers.sniff(chunk[0][:containers.SNIFF_BYTES]) is not None:
                self._next_file = chunk
                return
            yield chunk

    def __iter__(self) -> Iterator[_File]:
        first = self._next_chunk()
        if first is None:
            return
        # The first file's header may arrive cut into tiny chunks: gather enough to sniff.
        head, rest = first
        while len(head) < containers.SNIFF_BYTES:
            head, rest = head + b"".join(rest), iter(())
            more = self._next_chunk()
            if more is None:
                break
            head, rest = head + more[0], more[1]
        while True:
            file = _File(head, rest, self)
            yield file
            for _ in file:  # whatever the consumer left unread belongs to this file
                pass
            if self._next_file is None:
                return
            (head, rest), self._next_file = self._next_file, None


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


def _describe_difference(parts: list[_Part]) -> str:
    first = parts[0]
    for number, part in enumerate(parts[1:], start=2):
        if part.info.streams != first.info.streams:
            return f"file 1 has {_describe(first.info)}, file {number} has {_describe(part.info)}"
        if part.container != first.container:
            return f"file 1 is {first.container.name}, file {number} is {part.container.name}"
    return "they differ"


def _describe(info: MediaInfo) -> str:
    parts = []
    for s in info.streams:
        if s.kind == "video":
            parts.append(f"video {s.codec} {s.width}x{s.height} at {s.frame_rate} fps")
        else:
            parts.append(f"audio {s.codec} {s.sample_rate} Hz {s.channels}")
    return " + ".join(parts) or "no streams"


# Every recording in progress ends mid-frame: its last chunk was cut at an arbitrary byte.
# The frames before it are whole and kept.
_CUT_END = (b"File ended prematurely",)
# A decode check writes frames to the null muxer, which complains about frames with equal
# timestamps: Chromium writes those after a capture stall, and they decode and play.
_NULL_MUXER = (b"[null @", b"Last message repeated")


_NON_MONOTONIC = re.compile(rb"Non-monotonic DTS; previous: (-?\d+), current: (-?\d+)")


def _at_level(stderr: bytes, *levels: bytes) -> bytes:
    """The lines of a `-loglevel level+...` log tagged with one of the levels."""
    lines = stderr.splitlines(keepends=True)
    return b"".join(line for line in lines if any(level in line for level in levels))


def _time_runs_backwards(stderr: bytes) -> str | None:
    """ffmpeg's words when a stream's timestamps went back in time (equal ones are fine:
    Chromium writes them after a capture stall)."""
    for line in stderr.splitlines():
        match = _NON_MONOTONIC.search(line)
        if match and int(match.group(2)) < int(match.group(1)):
            return line[match.start():].decode("utf-8", "replace").strip()
    return None


def _without(stderr: bytes, ignore: tuple[bytes, ...]) -> bytes:
    lines = stderr.splitlines(keepends=True)
    return b"".join(line for line in lines if not any(marker in line for marker in ignore))


def _last_lines(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return "; ".join(lines[-_ERROR_LINES:]) or "ffmpeg failed without a message"
