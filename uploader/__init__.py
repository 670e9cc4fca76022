"""A command-line client of the video-chunk API: upload a file as a video, resumably; ask a
video's status; download it once joined.

    python -m uploader upload FILE [--api URL] [--chunk-size 4M] [--pieces] [--no-wait]
    python -m uploader status VIDEO [--token T]
    python -m uploader download VIDEO -o OUT [--token T]

upload
    Creates a video, sends FILE in chunks (POST /append_video/<id>/ with Content-Range and
    Content-Digest; 4 MiB by default, under the API's 4.5 MB request body limit), finalizes
    it, waits until the API has joined it (unless --no-wait) and prints the video id.
    A chunk larger than the body limit (--chunk-size over 4,500,000 bytes, or a lower limit
    a 413 reveals) goes as a piece: POST /videos/<id>/pieces, PUT to its presigned S3 URL,
    POST .../commit; --pieces sends every chunk that way.
    Connection errors, timeouts, 5xx and 429 are retried (--retries, exponential back-off
    with jitter, at least the Retry-After asked); a 409/416 range conflict continues from
    the offset the API reports.

Resuming
    While it runs, the upload keeps FILE.upload.json next to FILE (or a file in
    --state-dir): the API's URL, the video id and both tokens, so mode 0600. Run the same
    `upload FILE` again after an interruption and it continues that video from the bytes
    the API has committed (GET /videos/<id>), sending none of them again; --restart starts
    a new video instead (the abandoned one expires on the API). The file is removed once
    the video is finalized.

Tokens (status, download)
    VIDEO is a video id, or a FILE whose upload is under way (its state file gives the id,
    the API and the upload token). The token is the first of: --token; the state file's
    upload token; $VIDEO_API_TOKEN. Either token works: the playback token (read-only,
    printed by `upload` in its playback link and with --json) or the upload token.

API URL
    --api, else the state file's (status and download of a FILE), else $VIDEO_API_URL,
    else http://127.0.0.1:8000 (`make run`). A resumed upload goes to the API it began on.

Output
    stdout carries the result only: the video id (upload), the status (status), the path
    written (download), or with --json one JSON object (for upload it includes both tokens:
    the state file is gone by then; it is printed also when the join failed or the wait ran
    out, exit codes 5 and 6). Notes, the progress bar (tqdm, drawn only when stderr is a
    terminal and not with --quiet) and errors go to stderr.

Exit codes
    0 done; 2 usage (bad option, missing file or token, a state file that does not fit);
    3 the API refused (a 4xx: not found, wrong token, ...); 4 the API was unreachable or
    unavailable (connection errors, 5xx, 429) through every retry; 5 the video failed to
    join (also `status` of a failed video); 6 still being joined when the wait ran out;
    130 interrupted (an upload resumes when run again).
"""
__version__ = "0.1.0"
