"""Peak memory of one join (its Python process and ffmpeg together), sampled with psutil."""
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def run_join(video_id: int, env: dict, timeout: float, interval: float = 0.02,
             profile_out: str | None = None) -> dict:
    command = [sys.executable, "-m", "bench.join_child", str(video_id)]
    if profile_out:
        command += ["--profile", profile_out]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    root = psutil.Process(process.pid)
    peak_total = peak_python = peak_ffmpeg = 0
    samples = 0
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            python_rss = root.memory_info().rss
            ffmpeg_rss = 0
            for child in root.children(recursive=True):
                try:
                    ffmpeg_rss += child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            break
        samples += 1
        peak_python = max(peak_python, python_rss)
        peak_ffmpeg = max(peak_ffmpeg, ffmpeg_rss)
        peak_total = max(peak_total, python_rss + ffmpeg_rss)
        time.sleep(interval)
    if process.poll() is None:
        process.kill()
        process.communicate()
        raise RuntimeError(f"the join of video {video_id} did not finish within {timeout} s")
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"join process failed: {err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    mb = 1024 * 1024
    result.update(sampled_peak_total_mb=peak_total / mb, sampled_peak_python_mb=peak_python / mb,
                  sampled_peak_ffmpeg_mb=peak_ffmpeg / mb, samples=samples)
    # getrusage peaks are exact; the sum of the two peaks bounds the tree's peak from above.
    result["peak_mb"] = max(result["sampled_peak_total_mb"],
                            result["self_maxrss_mb"] + result["children_maxrss_mb"])
    return result
