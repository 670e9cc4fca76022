"""Medians over runs, and the Markdown table."""
import statistics


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(raw: dict) -> dict:
    runs = raw["runs"]
    s: dict = {}
    flat = [r["flatness"] for r in runs if "flatness" in r]
    if flat:
        for key in ("first_p50_ms", "first_p95_ms", "last_p50_ms", "last_p95_ms",
                    "ratio_p50", "ratio_p95", "ready_after_last_append_s"):
            s[f"flatness_{key}"] = _median([f[key] for f in flat])
        s["flatness_appends"] = flat[0]["appends"]
        s["flatness_window"] = flat[0]["window"]
        s["flatness_runs"] = len(flat)
    conc = [c for r in runs for c in r.get("concurrency", [])]
    for clients in sorted({c["clients"] for c in conc}):
        level = [c for c in conc if c["clients"] == clients]
        s[f"concurrency_{clients}_appends_per_s"] = _median([c["appends_per_s"] for c in level])
        s[f"concurrency_{clients}_p50_ms"] = _median([c["p50_ms"] for c in level])
        s[f"concurrency_{clients}_p95_ms"] = _median([c["p95_ms"] for c in level])
        s[f"concurrency_{clients}_appends"] = _median([c["appends"] for c in level])
        s[f"concurrency_{clients}_errors"] = sum(len(c["errors"]) for c in level)
    ttr = [r["ttr"] for r in runs if "ttr" in r]
    if ttr:
        for key in ("time_to_ready_s", "chunk_reads_s", "s3_compose_s", "ffmpeg_copy_s", "s3_put_s",
                    "ratio_vs_ffmpeg_copy", "ratio_vs_s3_put", "append_all_s"):
            s[f"ttr_{key}"] = _median([t.get(key) for t in ttr])
        s["ttr_join_methods"] = ", ".join(sorted({str(t.get("join_method")) for t in ttr}))
        moved = [t.get("final_join_bytes") or {} for t in ttr]
        for key in ("bytes_read", "bytes_written", "bytes_copied_in_s3"):
            s[f"ttr_join_{key}"] = _median([m.get(key) for m in moved])
        s["ttr_join_bytes_through"] = _median(
            [m["bytes_read"] + m["bytes_written"] for m in moved
             if m.get("bytes_read") is not None and m.get("bytes_written") is not None])
        s["ttr_bytes"] = ttr[0]["bytes"]
        s["ttr_chunks"] = ttr[0]["chunks"]
        s["ttr_runs"] = len(ttr)
    stuck = [f.get("stuck") for f in flat] + [t.get("stuck") for t in ttr]
    stuck += [x for c in conc for x in c.get("stuck", [])]
    s["videos_checked_ready"] = len(flat) + len(ttr) + sum(c["clients"] for c in conc)
    s["videos_stuck"] = sum(1 for x in stuck if x)
    mem = raw.get("memory") or []
    sizes = sorted({m["target_mb"] for m in mem})
    for size in sizes:
        level = [m for m in mem if m["target_mb"] == size]
        s[f"memory_{size}_bytes"] = level[0]["bytes"]
        for key in ("sampled_peak_total_mb", "sampled_peak_python_mb", "sampled_peak_ffmpeg_mb",
                    "self_maxrss_mb", "children_maxrss_mb", "seconds"):
            s[f"memory_{size}_{key}"] = _median([m[key] for m in level])
    if len(sizes) >= 2:
        s["memory_growth_mb"] = (s[f"memory_{sizes[-1]}_sampled_peak_total_mb"]
                                 - s[f"memory_{sizes[0]}_sampled_peak_total_mb"])
        s["memory_max_mb"] = max(s[f"memory_{size}_sampled_peak_total_mb"] for size in sizes)
        s["memory_sizes"] = sizes
    return s


def _f(value, digits=1, unit=""):
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


# What the join that makes a recording ready may move through its process, whatever the
# recording's length (the goal, for 10 and 60 minutes of 720p).
JOIN_BYTES_GOAL = 15_000_000


def _mb(value) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f} MB"


def _verdict(ok) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def markdown(raw: dict, s: dict) -> str:
    meta = raw["meta"]
    lines = [
        f"# video-chunk API benchmark ({meta['mode']} run)",
        "",
        f"- date: {meta['date']}; commit: `{meta['commit']}`"
        f" ({meta['dirty_files']} uncommitted paths in the tree)",
        f"- machine: {meta['cores']} cores, Python {meta['python']}, {meta['ffmpeg']};"
        f" load average at start {tuple(round(x, 2) for x in meta['load_average_at_start'])},"
        f" at end {tuple(round(x, 2) for x in meta.get('load_average_at_end', ()))}",
        f"- stack: `python -m devtools.server` (moto + chalice local + join worker) in a"
        f" subprocess, the local stage's JOIN_DELAY_SECONDS (1 s), chunks of {meta['chunk_bytes']} bytes;"
        f" HTTP scenarios repeated {meta['runs']}x on a fresh stack each, medians shown",
        f"- recording: {meta['recording']['path']} ({meta['recording']['bytes'] / 1e6:.1f} MB,"
        f" {meta['recording']['seconds']} s, VP8/Opus, unseekable WebM from a pipe)",
        f"- total wall time {meta.get('elapsed_s', 0):.0f} s",
        "",
        "| # | measurement | result | target | verdict |",
        "|---|---|---|---|---|",
    ]
    row = lines.append
    if "flatness_ratio_p50" in s:
        n, w = s["flatness_appends"], s["flatness_window"]
        row(f"| 1 | append latency, appends 1-{w} (p50 / p95) | {_f(s['flatness_first_p50_ms'])} /"
            f" {_f(s['flatness_first_p95_ms'])} ms | | |")
        row(f"| 1 | append latency, appends {n - w + 1}-{n} (p50 / p95) |"
            f" {_f(s['flatness_last_p50_ms'])} / {_f(s['flatness_last_p95_ms'])} ms | | |")
        ok = max(s["flatness_ratio_p50"], s["flatness_ratio_p95"]) <= 1.1
        row(f"| 1 | ratio last/first (p50 / p95) | {_f(s['flatness_ratio_p50'], 2)} /"
            f" {_f(s['flatness_ratio_p95'], 2)} | <= 1.1 | {_verdict(ok)} |")
        blocks = [r["flatness"].get("block_p95_ms") for r in raw["runs"] if "flatness" in r]
        if blocks and all(blocks):
            medians = [_median(values) for values in zip(*blocks)]
            row(f"| 1 | p95 of each {w} appends in order, ms (a trend would show growth with"
                f" length; diagnostic) | {' '.join(_f(m, 0) for m in medians)} | | |")
    deferred = raw.get("flatness_joins_deferred")
    if deferred:
        row(f"| 1 | same appends with joins deferred (JOIN_DELAY_SECONDS=900), p50 first/last"
            f" {deferred['window']} | {_f(deferred['first_p50_ms'])} / {_f(deferred['last_p50_ms'])} ms"
            f" (ratio p50 {_f(deferred['ratio_p50'], 2)}, p95 {_f(deferred['ratio_p95'], 2)}) |"
            f" diagnostic | |")
    calls = raw.get("calls")
    if calls:
        per = {k: v for k, v in calls["calls_per_append"].items() if "(conditional)" not in k}
        conditional = sum(v for k, v in calls["calls_per_append"].items() if "(conditional)" in k)
        text = ", ".join(f"{k} {v:.3g}" for k, v in per.items())
        s3_writes = sum(v for k, v in per.items() if k.startswith("s3.") and
                        k.split(".")[1] in ("PutObject", "UploadPart", "CreateMultipartUpload",
                                            "CopyObject", "CompleteMultipartUpload"))
        s3_all = sum(v for k, v in per.items() if k.startswith("s3."))
        ddb_writes = sum(v for k, v in per.items() if k.split(".")[1] in
                         ("UpdateItem", "PutItem", "DeleteItem", "TransactWriteItems"))
        ddb_all = sum(v for k, v in per.items() if k.startswith("dynamodb."))
        ok = abs(s3_writes - 1) < 1e-9 and abs(s3_all - 1) < 1e-9 and abs(ddb_all - 1) < 1e-9 \
            and abs(ddb_writes - 1) < 1e-9 and abs(conditional - 1) < 1e-9
        text += f"; conditional writes {conditional:.3g}"
        row(f"| 1 | AWS calls per append ({calls['appends']} in-process appends, no join worker)"
            f" | {text} | 1 S3 write + 1 DynamoDB conditional write | {_verdict(ok)} |")
        row(f"| 1 | in-process append p50, first/last 100 (no HTTP, no joins) |"
            f" {_f(calls['inprocess_first_p50_ms'])} / {_f(calls['inprocess_last_p50_ms'])} ms"
            f" (ratio {_f(calls['inprocess_ratio_p50'], 2)}) | diagnostic | |")
    if "ttr_ffmpeg_copy_s" in s:
        row(f"| 2 | time to ready after the last append ({s['ttr_chunks']} chunks,"
            f" {s['ttr_bytes'] / 1e6:.0f} MB; join method: {s['ttr_join_methods']}) |"
            f" {_f(s['ttr_time_to_ready_s'], 2, ' s')} | | |")
        row(f"| 2 | (a) `ffmpeg -i joined.webm -c copy out.webm`, local disk |"
            f" {_f(s['ttr_ffmpeg_copy_s'], 2, ' s')} | | |")
        row(f"| 2 | (b) one S3 PUT of the joined bytes to the emulator |"
            f" {_f(s['ttr_s3_put_s'], 2, ' s')} | | |")
        if s.get("ttr_chunk_reads_s") is not None:
            row(f"| 2 | (c) reading the {s['ttr_chunks']} chunk objects back, what a join from"
                f" the chunks must read (diagnostic) | {_f(s['ttr_chunk_reads_s'], 2, ' s')} | | |")
        if s.get("ttr_s3_compose_s") is not None:
            row(f"| 2 | (d) the emulator composing the same bytes from 5 MiB objects"
                f" (UploadPartCopy + Complete, as the join does; diagnostic) |"
                f" {_f(s['ttr_s3_compose_s'], 2, ' s')} | | |")
        row(f"| 2 | ratio time-to-ready / (a) | {_f(s['ttr_ratio_vs_ffmpeg_copy'], 2)} | | |")
        ratio = s["ttr_ratio_vs_s3_put"]
        row(f"| 2 | ratio time-to-ready / (b) | {_f(ratio, 2)} | <= 2.5 |"
            f" {_verdict(None if ratio is None else ratio <= 2.5)} |")
        through = s.get("ttr_join_bytes_through")
        row(f"| 2 | bytes the final join moved through the join process (read + written; the"
            f" worker's \"joined\" log line) / copied inside S3 (UploadPartCopy, not through it) |"
            f" {_mb(through)} (read {_mb(s.get('ttr_join_bytes_read'))} + written"
            f" {_mb(s.get('ttr_join_bytes_written'))}) / {_mb(s.get('ttr_join_bytes_copied_in_s3'))}"
            f" copied in S3 | < {JOIN_BYTES_GOAL / 1e6:.0f} MB through the process |"
            f" {_verdict(None if through is None else through < JOIN_BYTES_GOAL)} |")
        row(f"| 2 | appending the whole recording (serial, HTTP) |"
            f" {_f(s['ttr_append_all_s'], 1, ' s')} | | |")
    if "memory_sizes" in s:
        for size in s["memory_sizes"]:
            row(f"| 3 | join peak RSS, {s[f'memory_{size}_bytes'] / 1e6:.0f} MB recording"
                f" (Python + ffmpeg, sampled) | {_f(s[f'memory_{size}_sampled_peak_total_mb'], 0, ' MB')}"
                f" ({_f(s[f'memory_{size}_sampled_peak_python_mb'], 0)} +"
                f" {_f(s[f'memory_{size}_sampled_peak_ffmpeg_mb'], 0)}); getrusage maxrss"
                f" {_f(s[f'memory_{size}_self_maxrss_mb'], 0)} + {_f(s[f'memory_{size}_children_maxrss_mb'], 0)};"
                f" join {_f(s[f'memory_{size}_seconds'], 1, ' s')} | | |")
        row("| 3 | note: the getrusage maxrss figures carry the high-water mark of the parent"
            " that spawned each process (the benchmark, which holds the emulator's data; Linux"
            " keeps it across vfork+exec), so they overstate; the psutil-sampled tree peak"
            " (every 20 ms) is the measurement | | | |")
        g = s["memory_growth_mb"]
        row(f"| 3 | growth from {s['memory_sizes'][0]} MB to {s['memory_sizes'][-1]} MB |"
            f" {_f(g, 0, ' MB')} | < 10 MB | {_verdict(g < 10)} |")
        row(f"| 3 | largest peak | {_f(s['memory_max_mb'], 0, ' MB')} | < 200 MB |"
            f" {_verdict(s['memory_max_mb'] < 200)} |")
    for key in sorted((k for k in s if k.startswith("concurrency_") and k.endswith("_appends_per_s")),
                      key=lambda k: int(k.split("_")[1])):
        clients = key.split("_")[1]
        errs = s[f"concurrency_{clients}_errors"]
        row(f"| 4 | {clients} concurrent clients, distinct videos |"
            f" {_f(s[key], 1)} appends/s (p50 {_f(s[f'concurrency_{clients}_p50_ms'], 0)} ms,"
            f" p95 {_f(s[f'concurrency_{clients}_p95_ms'], 0)} ms"
            f"{f', {errs} errors' if errs else ''}) | | |")
    if s.get("videos_checked_ready"):
        row(f"| - | videos not ready when the benchmark stopped waiting (GET still 202 after"
            f" 120-300 s; catalog record and queue depth under \"stuck\" in the JSON) |"
            f" {s['videos_stuck']} of {s['videos_checked_ready']} | diagnostic | |")
    return "\n".join(lines) + "\n"
