"""Recordings made on the spot with ffmpeg's lavfi sources, in the shapes clients send.

`unseekable_stream` writes to a pipe as MediaRecorder does: no Duration, no Cues (WebM), a
fragmented MP4 with its moov first. `cut` slices such a stream at arbitrary byte offsets."""
import functools
import os
import random
import subprocess
import tempfile

VIDEO_CODECS = {"vp8": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k"],
                "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k"],
                "av1": ["-c:v", "libaom-av1", "-cpu-used", "8", "-b:v", "300k"],
                "h264": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]}
AUDIO_CODECS = {"opus": ["-c:a", "libopus", "-b:a", "64k"], "aac": ["-c:a", "aac", "-b:a", "64k"],
                "pcm": ["-c:a", "pcm_s16le"]}


def ffmpeg() -> str:
    return os.environ["FFMPEG_BINARY"]


@functools.lru_cache(maxsize=None)
def unseekable_stream(container: str = "webm", video: str | None = "vp8", audio: str | None = "opus",
                      seconds: float = 2.0, size: str = "320x240", rate: int = 25,
                      tone: int = 440, video_bitrate: str | None = None) -> bytes:
    """A recording as a stream. With video_bitrate, the picture is noisy so that the
    encoder needs that rate: a few seconds then make megabytes."""
    command = [ffmpeg(), "-hide_banner", "-v", "error"]
    if video:
        noise = ",noise=alls=40:allf=t" if video_bitrate else ""
        command += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}{noise}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000"]
    command += ["-t", str(seconds)]
    if video:
        command += VIDEO_CODECS[video] + ["-g", str(rate)]
        if video_bitrate:
            command += ["-b:v", video_bitrate]
    if audio:
        command += AUDIO_CODECS[audio]
    if container == "mp4":
        command += ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"]
    else:
        command += ["-f", container]
    if video == "av1":
        # libaom hands over the AV1 sequence header only after its first packet, which a
        # muxer writing to a pipe cannot go back for: encode to a file, then copy to a pipe.
        with tempfile.TemporaryDirectory() as work:
            encoded = os.path.join(work, "encoded.mkv")
            subprocess.run(command[:-2] + ["-f", "matroska", encoded], check=True, timeout=120,
                           capture_output=True)
            command = [ffmpeg(), "-hide_banner", "-v", "error", "-i", encoded, "-c", "copy",
                       "-f", container]
            return subprocess.run(command + ["pipe:1"], capture_output=True, check=True,
                                  timeout=120).stdout
    # Long recordings take a while to encode on a busy machine: about real time at worst.
    result = subprocess.run(command + ["pipe:1"], capture_output=True, check=True,
                            timeout=max(120, 2 * seconds))
    return result.stdout


def cut(data: bytes, sizes: list[int] | None = None, seed: int = 7, pieces: int = 12) -> list[bytes]:
    """Cut bytes at the given sizes (then evenly), or at random offsets."""
    if sizes is None:
        offsets = sorted(random.Random(seed).sample(range(1, len(data)), pieces - 1))
    else:
        offsets, position = [], 0
        for size in sizes:
            position += size
            offsets.append(position)
    bounds = [0, *offsets, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@functools.lru_cache(maxsize=None)
def fragmented_mp4(video: str | None = "h264", audio: str | None = "aac", seconds: float = 2.0,
                   size: str = "160x120", rate: int = 25,
                   movflags: str = "frag_keyframe+empty_moov+default_base_moof",
                   fragment_seconds: float | None = None, tone: int = 440) -> bytes:
    """A fragmented MP4 written to a pipe with the given -movflags. With fragment_seconds, a
    fragment at most that long (ffmpeg fragments audio alone only then: it has no keyframes
    to cut at). Without default_base_moof, ffmpeg writes absolute data offsets."""
    command = [ffmpeg(), "-hide_banner", "-v", "error"]
    if video:
        command += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000"]
    command += ["-t", str(seconds)]
    if video:
        command += VIDEO_CODECS[video] + ["-g", str(rate)]
    if audio:
        command += AUDIO_CODECS[audio]
    if fragment_seconds:
        command += ["-frag_duration", str(int(fragment_seconds * 1_000_000))]
    command += ["-movflags", movflags, "-f", "mp4", "pipe:1"]
    return subprocess.run(command, capture_output=True, check=True, timeout=300).stdout


@functools.lru_cache(maxsize=None)
def plain_mp4(seconds: float = 2.0) -> bytes:
    """A finished, non-fragmented MP4 (sample tables in a moov before the mdat)."""
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "plain.mp4")
        subprocess.run([ffmpeg(), "-hide_banner", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=160x120:rate=25", "-t", str(seconds), *VIDEO_CODECS["h264"],
                        "-movflags", "+faststart", path], check=True, timeout=120, capture_output=True)
        with open(path, "rb") as file:
            return file.read()


def recording_file(path: str, video: str | None = "vp8", audio: str | None = "opus",
                   seconds: float = 12.0, size: str = "320x240", rate: int = 25,
                   keyframe_seconds: float = 1.0, keep: str | None = None,
                   audio_delay: float = 0.0, container: str = "webm") -> str:
    """A recording written to a file, as a join leaves it (seekable: Duration, Cues), with
    a keyframe exactly every keyframe_seconds and none between. keep: a select expression
    of the frames to keep (the others are left out, their time stays empty: a variable
    frame rate, as a screen recording that sends no frame while nothing moves). The audio
    starts audio_delay seconds after the video."""
    command = [ffmpeg(), "-hide_banner", "-v", "error", "-y"]
    if video:
        command += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        if audio_delay:
            command += ["-itsoffset", str(audio_delay)]
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    command += ["-t", str(seconds)]
    if video:
        if keep:
            command += ["-vf", f"select='{keep}'", "-fps_mode", "vfr"]
        command += VIDEO_CODECS[video] + [
            "-g", "100000", "-force_key_frames", f"expr:gte(t,n_forced*{keyframe_seconds})"]
        if video == "av1":  # as Chromium runs libaom: real-time, no frames held back
            command += ["-usage", "realtime", "-lag-in-frames", "0"]
    if audio:
        command += AUDIO_CODECS[audio]
    subprocess.run(command + ["-f", container, path], check=True, timeout=300,
                   capture_output=True)
    return path
