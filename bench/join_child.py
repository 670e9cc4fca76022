"""One join in its own process: `python -m bench.join_child VIDEO_ID [--profile OUT]`.

Builds the join job (chalicelib.wiring) against the emulator named by AWS_ENDPOINT_URL (the
chunks are already appended) and runs it; prints one JSON line with the outcome, the wall
time and the peak RSS of this process and of its children (ffmpeg), from getrusage."""
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    video_id = int(sys.argv[1])
    profile_out = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--profile" else None
    from chalicelib import wiring
    from chalicelib.settings import get_settings
    services = wiring.build(get_settings())
    joiner = services.joiner
    started = time.perf_counter()
    if profile_out:
        import cProfile
        profiler = cProfile.Profile()
        outcome = profiler.runcall(joiner.run, video_id)
        profiler.dump_stats(profile_out)
    else:
        outcome = joiner.run(video_id)
    seconds = time.perf_counter() - started
    video = services.backend.catalog.get(video_id)
    print(json.dumps({
        "outcome": outcome.value, "seconds": seconds,
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "media": video.media.as_dict() if video and video.media else None,
    }), flush=True)


if __name__ == "__main__":
    main()
