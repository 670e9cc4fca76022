"""Test recordings: generated with ffmpeg's lavfi sources, written as an unseekable WebM
stream to a pipe (as MediaRecorder writes it), cached in bench/work/ so reruns skip them."""
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
CHUNK_BYTES = 300 * 1024


def ffmpeg_binary() -> str:
    return os.environ.get("FFMPEG_BINARY") or str(ROOT / "layers" / "ffmpeg" / "bin" / "ffmpeg")


def _write_from_pipe(command: list[str], path: Path, timeout: float) -> None:
    """Run ffmpeg with `pipe:1` output and copy its stdout to `path` (atomically)."""
    partial = path.with_suffix(path.suffix + ".partial")
    with open(partial, "wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.PIPE)
        try:
            _, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RuntimeError(f"ffmpeg did not finish within {timeout} s: {command}")
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({process.returncode}): {err.decode()[-2000:]}")
    partial.rename(path)


def recording(seconds: int, bitrate_k: int = 2500, height: int = 720, log=print) -> Path:
    """A VP8/Opus WebM stream of `seconds`, 16:9 at `height`, about `bitrate_k` kbit/s."""
    WORK.mkdir(parents=True, exist_ok=True)
    width = height * 16 // 9
    path = WORK / f"rec-{height}p-{seconds}s-{bitrate_k}k.webm"
    if path.exists():
        return path
    log(f"generating {path.name} (cached for later runs) ...")
    started = time.monotonic()
    command = [
        ffmpeg_binary(), "-hide_banner", "-nostats", "-loglevel", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds),
        "-c:v", "libvpx", "-b:v", f"{bitrate_k}k", "-minrate", f"{bitrate_k}k",
        "-maxrate", f"{bitrate_k}k", "-bufsize", f"{bitrate_k}k",
        "-deadline", "realtime", "-cpu-used", "8", "-threads", "2", "-g", "60",
        "-c:a", "libopus", "-b:a", "96k",
        "-f", "webm", "pipe:1",
    ]
    # Generation is slower than real time on a 2-core machine: bound it generously.
    _write_from_pipe(command, path, timeout=max(120, seconds * 3))
    log(f"  generated in {time.monotonic() - started:.0f} s, {path.stat().st_size / 1e6:.1f} MB")
    return path


def sized_stream(source: Path, target_bytes: int, log=print) -> Path:
    """A single valid, unseekable WebM stream of about target_bytes, stream-copied from
    `source` (looped when it is too short), again written to a pipe."""
    path = WORK / f"{source.stem}-{target_bytes // 1_000_000}MB.webm"
    if path.exists():
        return path
    size = source.stat().st_size
    loops = max(0, -(-target_bytes // size) - 1)
    log(f"making {path.name} from {source.name} (looped {loops} extra times) ...")
    command = [ffmpeg_binary(), "-hide_banner", "-nostats", "-loglevel", "error",
               "-stream_loop", str(loops), "-i", str(source),
               "-map", "0", "-c", "copy", "-fs", str(target_bytes),
               "-f", "webm", "pipe:1"]
    _write_from_pipe(command, path, timeout=600)
    return path


def chunks_of(path: Path, size: int = CHUNK_BYTES) -> list[bytes]:
    """The stream cut at arbitrary byte positions, as MediaRecorder's timeslice Blobs are."""
    data = path.read_bytes()
    return [data[i:i + size] for i in range(0, len(data), size)]


def iter_chunks(path: Path, size: int = CHUNK_BYTES):
    with open(path, "rb") as f:
        while block := f.read(size):
            yield block


if __name__ == "__main__":  # pre-generate: python -m bench.recording SECONDS
    import sys
    print(recording(int(sys.argv[1]) if len(sys.argv) > 1 else 600))
