"""The one place that runs ffmpeg: every command line is built here, with ffmpeg-python.

Every error ffmpeg reports fails the step (NotPlayable), even when it exits 0, except the
few messages named below that every live recording produces.
"""
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Iterable

import ffmpeg

from chalicelib.errors import NotPlayable
from chalicelib.media import containers
from chalicelib.media.containers import Container
from chalicelib.media.probe import MediaInfo, parse_probe

# ffmpeg's own words are kept short in a status: the last lines say what went wrong.
_ERROR_LINES = 4
# Joins of files that differ are re-encoded to this one format (chalicelib.media.reencode):
# H.264 and AAC in MP4 plays everywhere.
REENCODE_CONTAINER = containers.MP4
# Every recording in progress ends mid-frame: its last chunk was cut at an arbitrary byte.
# The frames before it are whole and kept.
_CUT_END = (b"File ended prematurely",)
# A decode check writes frames to the null muxer, which complains about frames with equal
# timestamps: Chromium writes those after a capture stall, and they decode and play.
_NULL_MUXER = (b"[null @", b"Last message repeated")
_NON_MONOTONIC = re.compile(rb"Non-monotonic DTS; previous: (-?\d+), current: (-?\d+)")


class Ffmpeg:
    def __init__(self, binary: str):
        self.binary = binary

    def _command(self, stream, loglevel: str = "error") -> list[str]:
        return stream.global_args("-hide_banner", "-nostats", "-loglevel", loglevel).compile(
            cmd=self.binary, overwrite_output=True)

    def _run(self, stream, what: str, ignore: tuple[bytes, ...] = (),
             timeout: float | None = None) -> None:
        """Run to completion; any error ffmpeg reports fails the step, even with exit 0,
        except lines that contain one of `ignore`. With a timeout, ffmpeg is killed when it
        runs longer and the step fails saying so."""
        try:
            result = subprocess.run(self._command(stream), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NotPlayable(f"{what}: ffmpeg did not finish within {timeout:.0f} s") from None
        errors = _without(result.stderr, ignore)
        if result.returncode != 0 or errors.strip():
            raise NotPlayable(f"{what}: {_last_lines(errors or result.stderr)}")

    def remux_stream(self, blocks: Iterable[bytes], container: Container, output: str) -> float | None:
        """Pipe one file's bytes into ffmpeg and stream-copy them into a seekable file.

        Returns the last timestamp ffmpeg wrote (seconds): the stream's own idea of its length.
        """
        progress = output + ".progress"
        stream = ffmpeg.input("pipe:0").output(output, **_copy_options(container)).global_args(
            "-progress", progress)
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
        result = subprocess.run([self.binary, "-hide_banner", "-i", path],
                                stdin=subprocess.DEVNULL, capture_output=True)
        return parse_probe(result.stderr.decode("utf-8", "replace"))

    def audio_packets(self, path: str) -> list[tuple[float, float]]:
        """(start, duration) in seconds of every packet of the first audio stream, in file
        order, read without decoding (an empty list when there is no audio)."""
        result = subprocess.run(
            self._command(ffmpeg.input(path).output("-", map="0:a:0?", c="copy", f="framecrc")),
            stdin=subprocess.DEVNULL, capture_output=True)
        if result.returncode != 0:
            raise NotPlayable(f"the audio could not be read: {_last_lines(result.stderr)}")
        return [(packet.pts, packet.duration)
                for packet in _packets(result.stdout.decode("ascii", "replace"))]

    def poster(self, video: str, output: str, at_seconds: float) -> None:
        source = ffmpeg.input(video, ss=at_seconds)
        self._run(source.output(output, vframes=1, fflags="+bitexact", **{"q:v": 3}),
                  "no poster frame")

    def decode(self, path: str, start: float | None = None, seconds: float | None = None) -> None:
        """Decode a file, or `seconds` of it from `start`: any error fails."""
        window = {name: value for name, value in (("ss", start), ("t", seconds)) if value}
        self._run(ffmpeg.input(path, **window).output("-", f="null"),
                  "the joined video does not decode cleanly", ignore=_NULL_MUXER)

    def concat_copy(self, paths: list[str], container: Container, output: str) -> None:
        """Join files with the same streams by stream copy (the concat demuxer)."""
        listing = output + ".txt"
        with open(listing, "w") as out:
            for path in paths:
                out.write(f"file '{_quoted(path)}'\n")
        self._run(ffmpeg.input(listing, f="concat", safe=0).output(output, **_copy_options(container)),
                  "the files could not be joined")

    # Complete files that differ (chalicelib.media.reencode): each file's video encoded on
    # its own, the audio of all of them in one pass.

    def encode_part(self, source: str | None, output: str, options: dict, size: tuple[int, int],
                    rate: float, start: float, frames: int, fill: bool = False,
                    timeout: float | None = None) -> None:
        """Encode at most `frames` frames at a constant `rate` of the first video stream of
        `source` (black frames when None: a file without video), fitted into `size`, its
        timestamps starting at `start` (where it starts in the joined video). With `fill`,
        a stream that ends short has its last frame repeated up to `frames`: a piece cut
        from inside a file fills its place exactly, as the frame rate conversion of the
        whole file would have held that frame until the next piece's first (a screen
        recording sends no frames while nothing moves)."""
        width, height = size
        if source is None:
            video = ffmpeg.input(f"color=c=black:s={width}x{height}:r={rate}:d={frames / rate:.6f}",
                                 f="lavfi").video
        else:
            video = _fitted(ffmpeg.input(source)["v:0"], size)
        video = video.filter("setpts", "PTS-STARTPTS").filter("fps", rate)
        if fill:
            video = video.filter("tpad", stop_mode="clone", stop_duration=f"{frames / rate:.6f}")
        video = video.filter("trim", end_frame=frames).filter("format", "yuv420p")
        stream = ffmpeg.output(video, output, output_ts_offset=f"{start:.6f}", **options)
        self._run(stream, "the file could not be encoded", timeout=timeout)

    def encode_audio_parts(self, parts: list[tuple[str | None, float]], output: str,
                           options: dict, timeout: float | None = None) -> None:
        """Encode in one pass the first audio stream of each file (silence for None), each
        made exactly its `seconds` long (padded with silence or cut), one after another."""
        streams = []
        for source, seconds in parts:
            if source is None:
                audio = ffmpeg.input(f"anullsrc=r=48000:cl=stereo:d={seconds}", f="lavfi").audio
            else:
                audio = (ffmpeg.input(source)["a:0"].filter("asetpts", "PTS-STARTPTS")
                         .filter("aresample", 48000)
                         .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
                         .filter("apad").filter("atrim", duration=seconds))
            streams.append(audio)
        joined = ffmpeg.concat(*streams, v=0, a=1) if len(streams) > 1 else streams[0]
        self._run(ffmpeg.output(joined, output, **options), "the audio could not be encoded",
                  timeout=timeout)

    def copy_video(self, source: str, output: str, options: dict, timeout: float | None = None) -> None:
        """Stream-copy the first video stream alone into `output`, timestamps kept."""
        stream = ffmpeg.output(ffmpeg.input(source)["v:0"], output, c="copy", **options)
        self._run(stream.global_args("-copyts"), "the video could not be copied", timeout=timeout)

    def copy_audio(self, source: str, output: str) -> None:
        """Stream-copy the first audio stream alone into a Matroska file."""
        self._run(_audio_copy(ffmpeg.input(source), output), "the audio could not be copied")

    # The rendition (chalicelib.media.rendition): cut, encode and join by pieces. The
    # choices (encoder options, where to cut) are the rendition's; the command lines are here.

    def video_packets(self, path: str) -> list["Packet"]:
        """Every packet of the first video stream in file (decode) order, with the file's
        own timestamps (-copyts: not moved to start at 0) and keyframe flag, read without
        decoding (an empty list when there is no video)."""
        return _packets(self._framecrc(path, "0:v:0?"))

    def media_end(self, path: str) -> float | None:
        """Where the last packet of any stream ends, in seconds of the file's own timestamps
        (-copyts: not moved to start at 0), read without decoding; None without packets."""
        return max((packet.pts + packet.duration for packet in _packets(self._framecrc(path, "0"))),
                   default=None)

    def _framecrc(self, path: str, streams: str) -> str:
        """ffmpeg's framecrc listing of the packets of `streams` (a -map), with the file's
        own timestamps (-copyts), read without decoding."""
        stream = ffmpeg.input(path).output("-", map=streams, c="copy", f="framecrc")
        result = subprocess.run(self._command(stream.global_args("-copyts")),
                                stdin=subprocess.DEVNULL, capture_output=True)
        if result.returncode != 0:
            raise NotPlayable(f"the video could not be read: {_last_lines(result.stderr)}")
        return result.stdout.decode("ascii", "replace")

    def start_time(self, path: str) -> float | None:
        """The file's start time in seconds as its demuxer reports it (the earliest
        presentation time of its streams; AAC priming excluded)."""
        result = subprocess.run([self.binary, "-hide_banner", "-i", path],
                                stdin=subprocess.DEVNULL, capture_output=True)
        match = _START.search(result.stderr.decode("utf-8", "replace"))
        return float(match.group(1)) if match else None

    def split_video(self, source: str, first_frames: list[int], pattern: str,
                    timeout: float | None = None) -> None:
        """Stream-copy the first video stream into Matroska files named `pattern % n`,
        a new file at each packet number of `first_frames` (each must be a keyframe; the
        first file starts at packet 0), every packet in exactly one file, timestamps kept."""
        source_stream = ffmpeg.input(source)
        copy = {"map": "0:v:0", "c": "copy", "fflags": "+bitexact"}
        if first_frames:
            stream = source_stream.output(
                pattern, f="segment", segment_format="matroska", reset_timestamps=0,
                segment_frames=",".join(str(frame) for frame in first_frames), **copy)
        else:
            stream = source_stream.output(pattern % 0, f="matroska", **copy)
        self._run(stream.global_args("-copyts"), "the video could not be cut into pieces",
                  timeout=timeout)

    def encode_video(self, source: str, output: str, options: dict, size: tuple[int, int],
                     audio_options: dict | None = None, keep_timestamps: bool = True,
                     timeout: float | None = None) -> None:
        """Re-encode the first video stream (and, with audio_options, the first audio
        stream) into `output`, every frame fitted into `size` (scaled, padded, square
        pixels). keep_timestamps: the output keeps the input's timestamps (-copyts)."""
        source_stream = ffmpeg.input(source)
        video = _fitted(source_stream["v:0"], size)
        streams = [video] + ([source_stream["a:0"]] if audio_options else [])
        stream = ffmpeg.output(*streams, output, **options, **(audio_options or {}))
        if keep_timestamps:
            stream = stream.global_args("-copyts")
        self._run(stream, "the video could not be encoded", timeout=timeout)

    def encode_audio(self, source: str, output: str, options: dict,
                     timeout: float | None = None) -> None:
        """Re-encode the first audio stream alone into `output`, timestamps kept."""
        stream = ffmpeg.output(ffmpeg.input(source)["a:0"], output, **options)
        self._run(stream.global_args("-copyts"), "the audio could not be encoded",
                  timeout=timeout)


@dataclass(frozen=True)
class Packet:
    pts: float  # seconds
    duration: float  # seconds (0 when the container does not say)
    keyframe: bool


_START = re.compile(r"Duration: [^,]+, start: (-?\d+(?:\.\d+)?)")
_NO_TIMESTAMP = -(2 ** 63)


def _packets(framecrc: str) -> list[Packet]:
    """The packets of ffmpeg's framecrc output: `stream, dts, pts, duration, size, crc`,
    then `F=0x..` when the flags are other than keyframe alone; each stream in its own time
    base (`#tb <stream>: num/den`)."""
    time_bases, packets = {}, []
    for line in framecrc.splitlines():
        if line.startswith("#tb "):
            stream, base = line[4:].split(":", 1)
            numerator, denominator = base.strip().split("/")
            time_bases[int(stream)] = int(numerator) / int(denominator)
        elif line and not line.startswith("#"):
            fields = [field.strip() for field in line.split(",")]
            time_base = time_bases.get(int(fields[0]), 1 / 1000)
            dts, pts, duration = int(fields[1]), int(fields[2]), int(fields[3])
            flags = next((int(f[2:], 16) for f in fields[6:] if f.startswith("F=")), 1)
            pts = dts if pts == _NO_TIMESTAMP else pts
            packets.append(Packet(pts * time_base, duration * time_base, bool(flags & 1)))
    return packets


def _quoted(path: str) -> str:
    """A path inside single quotes of a concat listing."""
    return path.replace("'", "'\\''")


def _fitted(video, size: tuple[int, int]):
    """`video` scaled into `size` (never stretched: padded, square pixels), its pixels in
    BT.601 limited range, the colours rendition.VIDEO_OPTIONS tags. Every encode is then
    described alike whatever its source said (pieces of differing files join under one
    sample description), and Chromium's recordings, BT.601 without a tag, are not
    converted at all."""
    width, height = size
    return (video.filter("scale", width, height, force_original_aspect_ratio="decrease",
                         out_color_matrix="bt601", out_range="tv")
            .filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2")
            .filter("setsar", 1))


def _audio_copy(source, output: str):
    """The first audio stream of an input, stream-copied alone into a Matroska file."""
    return source.output(output, map="0:a:0", f="matroska", c="copy", fflags="+bitexact")


def _copy_options(container: Container) -> dict:
    options = {"c": "copy", "map": "0", "f": container.name, "fflags": "+bitexact"}
    if container is containers.MP4:
        options["movflags"] = "+faststart"  # the index before the media: plays while loading
    return options


def frame_rate(text: str | None) -> float:
    """A probed frame rate in frames a second; 30 when it is missing or implausible."""
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


# A path of the join's work directory says nothing to a client about its recording.
_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*")


def _last_lines(stderr: bytes) -> str:
    text = _PATH.sub("<file>", stderr.decode("utf-8", "replace"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[-_ERROR_LINES:]) or "ffmpeg failed without a message"
