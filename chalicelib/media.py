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


class Ffmpeg:
    def __init__(self, binary: str):
        self.binary = binary

    # --- running ---------------------------------------------------------------------

    def _command(self, stream) -> list[str]:
        return stream.global_args("-hide_banner", "-nostats", "-loglevel", "error").compile(
            cmd=self.binary, overwrite_output=True)

    def _run(self, stream, what: str) -> None:
        result = subprocess.run(self._command(stream), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if result.returncode != 0:
            raise NotPlayable(f"{what}: {_last_lines(result.stderr)}")

    def remux_stream(self, blocks: Iterable[bytes], container: Container, output: str) -> None:
        """Pipe one file's bytes into ffmpeg and stream-copy them into a seekable file."""
        options = {"c": "copy", "map": "0", "f": container.name}
        if container is containers.MP4:
            options["movflags"] = "+faststart"
        command = self._command(ffmpeg.input("pipe:0").output(output, **options))
        with open(output + ".log", "w+b") as log:
            process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=log)
            try:
                for block in blocks:
                    process.stdin.write(block)
                process.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg gave up early; its exit code and log say why
            except BaseException:
                process.kill()
                process.wait()
                raise
            returncode = process.wait()
            log.seek(0)
            message = log.read()
        os.unlink(output + ".log")
        if returncode != 0:
            raise NotPlayable(f"the recording could not be read: {_last_lines(message)}")

    def probe(self, path: str) -> MediaInfo:
        """Duration and streams, from what `ffmpeg -i` prints (ffprobe is not in the layer)."""
        result = subprocess.run([self.binary, "-hide_banner", "-i", path],
                                stdin=subprocess.DEVNULL, capture_output=True)
        return parse_probe(result.stderr.decode("utf-8", "replace"))

    def poster(self, video: str, output: str, at_seconds: float) -> None:
        source = ffmpeg.input(video, ss=at_seconds)
        self._run(source.output(output, vframes=1, **{"q:v": 3}), "no poster frame")

    # --- joining -------------------------------------------------------------------

    def join(self, chunks: Iterable[bytes | Iterator[bytes]], work_dir: str) -> JoinedVideo:
        """Join chunks (each given as bytes or as an iterator of blocks), in order."""
        files: list[tuple[str, Container]] = []
        for index, blocks in enumerate(_ChunkFiles(chunks)):
            container = containers.sniff(blocks.head[:containers.SNIFF_BYTES])
            if container is None:
                raise NotPlayable(
                    "the first chunk does not start with a WebM, Matroska or MP4 header"
                    if index == 0 else "a chunk holds an unknown kind of file")
            path = os.path.join(work_dir, f"part-{index:06d}.{container.extension}")
            self.remux_stream(blocks, container, path)
            files.append((path, container))
        if not files:
            raise NotPlayable("there are no chunks to join")
        if len(files) == 1:
            path, container = files[0]
        else:
            path, container = self._concat(files, work_dir)
        info = self.probe(path)
        if not info.streams:
            raise NotPlayable("the joined file holds no audio or video stream")
        return JoinedVideo(path=path, container=container, info=info, files=len(files))

    def _concat(self, files: list[tuple[str, Container]], work_dir: str) -> tuple[str, Container]:
        infos = [self.probe(path) for path, _ in files]
        container = files[0][1]
        if len({c for _, c in files}) == 1 and len({i.streams for i in infos}) == 1:
            listing = os.path.join(work_dir, "files.txt")
            with open(listing, "w") as out:
                for path, _ in files:
                    out.write(f"file '{path}'\n")
            output = os.path.join(work_dir, f"joined.{container.extension}")
            options = {"c": "copy", "map": "0", "f": container.name}
            if container is containers.MP4:
                options["movflags"] = "+faststart"
            self._run(ffmpeg.input(listing, f="concat", safe=0).output(output, **options),
                      "the files could not be joined")
            return output, container
        raise NotPlayable("the chunks are complete files whose streams differ: "
                          + _describe_difference(infos))


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
_STREAM = re.compile(r"Stream #\d+:\d+[^:]*: (Video|Audio): (\w+)(.*)")
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
    for kind, codec, rest in _STREAM.findall(text):
        if kind == "Video":
            size = _SIZE.search(rest)
            fps = _FPS.search(rest)
            streams.append(Stream("video", codec,
                                  width=int(size.group(1)) if size else None,
                                  height=int(size.group(2)) if size else None,
                                  frame_rate=fps.group(1) if fps else None))
        else:
            rate = _RATE.search(rest)
            streams.append(Stream("audio", codec,
                                  sample_rate=int(rate.group(1)) if rate else None,
                                  channels=rate.group(2).strip() if rate else None))
    return MediaInfo(duration=duration, streams=tuple(streams))


def _describe_difference(infos: list[MediaInfo]) -> str:
    first = infos[0]
    for number, info in enumerate(infos[1:], start=2):
        if info.streams != first.streams:
            return (f"file 1 has {_describe(first)}, file {number} has {_describe(info)}")
    return "the containers differ"


def _describe(info: MediaInfo) -> str:
    parts = []
    for s in info.streams:
        if s.kind == "video":
            parts.append(f"video {s.codec} {s.width}x{s.height} {s.frame_rate} fps")
        else:
            parts.append(f"audio {s.codec} {s.sample_rate} Hz {s.channels}")
    return " + ".join(parts) or "no streams"


def _last_lines(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return "; ".join(lines[-_ERROR_LINES:]) or "ffmpeg failed without a message"
