"""The command line: argparse, where the API, the video and the token come from, and what
is printed (the result on stdout, everything else on stderr) with which exit code."""
import argparse
import json
import os
import urllib.parse
from pathlib import Path

from uploader import errors
from uploader import state as states
from uploader.client import Api
from uploader.download import download
from uploader.errors import JoinFailed, UploaderError, UsageError, WaitTimedOut
from uploader.progress import Reporter
from uploader.retry import RetryPolicy
from uploader.sizes import format_size, parse_size
from uploader.upload import API_BODY_LIMIT, DEFAULT_CHUNK_SIZE, Upload, UploadOptions, wait_until_joined

DEFAULT_API = "http://127.0.0.1:8000"  # where `make run` serves
API_ENV = "VIDEO_API_URL"
TOKEN_ENV = "VIDEO_API_TOKEN"

EPILOG = f"""\
environment:
  {API_ENV}     the API's URL when --api is not given (default {DEFAULT_API})
  {TOKEN_ENV}   the token for status/download when neither --token nor a state file gives one

tokens (status, download):
  VIDEO is a video id, or a FILE whose upload is under way (its state file
  FILE.upload.json gives the id, the API and the upload token). The token is the first of
  --token, that state file's upload token, ${TOKEN_ENV}. The playback token (in the link
  `upload` prints, and in its --json) and the upload token both work.

resuming:
  `upload FILE` keeps FILE.upload.json (mode 0600: it holds the upload token) until the
  video is finalized. Run the same command again after an interruption: it continues the
  same video from the bytes the API has committed, sending none of them again.

output:
  stdout: the video id (upload, also when the join failed or the wait ran out), the status
  (status), the path written (download), or one JSON object with --json (upload's holds
  both tokens). Notes, the progress bar and errors go to stderr.

exit codes:
  0    done
  2    usage: bad option, missing file or token, a state file that does not fit the file
  3    the API refused (4xx: no such video, wrong token, ...)
  4    the API was unreachable or unavailable (connection errors, 5xx, 429) through every retry
  5    the video failed to join (also `status` of a failed video)
  6    the video was still being joined when the wait ran out
  130  interrupted (an upload resumes when run again)

example, against `make run`:
  python -m uploader upload recording.webm
  python -m uploader download 1 -o joined.webm --token PLAYBACK_TOKEN
"""


def _api_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 up")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", type=_api_url, metavar="URL",
                        help=f"the API's base URL (default: ${API_ENV}, else {DEFAULT_API})")
    common.add_argument("--retries", type=_count, default=RetryPolicy.retries, metavar="N",
                        help="tries after the first for connection errors, timeouts, 5xx and 429, "
                             "with exponential back-off and jitter (default: %(default)s)")
    common.add_argument("--json", action="store_true", help="print the result as one JSON object")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no notes on stderr, errors only (the bar is "
                             "also left out when stderr is not a terminal)")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--no-wait", action="store_true",
                         help="do not wait for the video to be joined")
    waiting.add_argument("--wait-timeout", type=_seconds, default=600.0, metavar="SECONDS",
                         help="how long to wait for the join (default: %(default)g)")
    reading = argparse.ArgumentParser(add_help=False)
    reading.add_argument("video", metavar="VIDEO",
                         help="a video id, or a FILE whose upload is under way")
    reading.add_argument("--token", metavar="T",
                         help=f"the playback or upload token (default: the state file's, "
                              f"else ${TOKEN_ENV})")
    reading.add_argument("--state-dir", type=Path, metavar="DIR",
                         help="where the upload of FILE keeps its state (as given to upload)")

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m uploader", formatter_class=formatter, epilog=EPILOG,
        description="Upload a video file to the video-chunk API in resumable chunks, ask its\n"
                    "status, download the joined video.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser(
        "upload", parents=[common, waiting], formatter_class=formatter, epilog=EPILOG,
        help="upload FILE as a new video, or resume its interrupted upload",
        description="Create a video, send FILE in chunks (Content-Range, Content-Digest),\n"
                    "finalize it, wait until it is joined, print its id. Run again after an\n"
                    "interruption, it continues the same video from what the API committed.")
    upload.add_argument("file", type=Path, metavar="FILE")
    upload.add_argument("--chunk-size", type=_size, default=DEFAULT_CHUNK_SIZE, metavar="BYTES",
                        help=f"bytes per request, or with k, M, G (powers of 1024): 512k, 4M "
                             f"(default: 4M). Chunks over the API's body limit ({API_BODY_LIMIT} "
                             f"bytes) go as pieces through presigned S3 URLs")
    upload.add_argument("--pieces", action="store_true",
                        help="send every chunk as a piece: PUT to a presigned S3 URL, then commit")
    upload.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="keep the upload's state file in DIR (default: next to FILE, "
                             "as FILE.upload.json)")
    upload.add_argument("--restart", action="store_true",
                        help="ignore an interrupted upload of FILE and start a new video")

    commands.add_parser(
        "status", parents=[common, reading], formatter_class=formatter, epilog=EPILOG,
        help="print a video's status", description="Print a video's status (GET /videos/<id>).")

    fetch = commands.add_parser(
        "download", parents=[common, reading, waiting], formatter_class=formatter, epilog=EPILOG,
        help="download the joined video",
        description="Download the joined video to OUT, waiting while it is being joined.")
    fetch.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                       help="the file to write (written whole or not at all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reporter = Reporter(quiet=args.quiet)
    try:
        return COMMANDS[args.command](args, reporter)
    except UploaderError as error:
        reporter.error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        reporter.error("interrupted" + ("; run the same command again to resume the upload"
                                        if args.command == "upload" else ""))
        return errors.EXIT_INTERRUPTED


def _make_api(args, reporter: Reporter):
    policy = RetryPolicy(retries=args.retries)

    def on_retry(why: str, delay: float, number: int) -> None:
        reporter.note(f"{why}; retry {number} of {policy.retries} in {delay:.1f} s")

    return lambda url: Api(url, policy, on_retry)


def _print(args, result: dict, plain: str) -> None:
    print(json.dumps(result) if args.json else plain, flush=True)


def upload_command(args, reporter: Reporter) -> int:
    options = UploadOptions(
        api_url=args.api or os.environ.get(API_ENV) or DEFAULT_API, api_url_given=args.api is not None,
        chunk_size=args.chunk_size, pieces=args.pieces, state_dir=args.state_dir,
        restart=args.restart)
    make_api = _make_api(args, reporter)
    result = Upload(args.file, options, make_api, reporter).run()
    state, status, code = result.state, result.status, errors.EXIT_OK
    api = make_api(state.api)
    if not args.no_wait:
        try:
            status = wait_until_joined(lambda: api.status(state.video_id, state.upload_token),
                                       args.wait_timeout, reporter, status=status)
        except (JoinFailed, WaitTimedOut) as outcome:
            # Uploaded all the same: the result is printed, the exit code says how it went.
            reporter.error(str(outcome))
            status, code = outcome.status, outcome.exit_code
    if code == errors.EXIT_OK:
        reporter.note(_summary(status))
    _print(args, {**status, "api": state.api,
                  "playback_url": api.playback_url(state.video_id, state.playback_token),
                  "playback_token": state.playback_token, "upload_token": state.upload_token,
                  "resumed_from": result.resumed_from, "sent_bytes": result.sent_bytes},
           str(state.video_id))
    return code


def _target(args) -> tuple[str, int, str]:
    """The API, the video id and the token for status and download."""
    saved = None
    if args.video.isdigit():
        video_id = int(args.video)
    else:
        path = states.state_path(Path(args.video), args.state_dir)
        saved = states.load(path)
        if saved is None:
            raise UsageError(f"{args.video!r} is neither a video id nor a file whose upload is "
                             f"under way (there is no {path})")
        video_id = saved.video_id
    token = args.token or (saved.upload_token if saved else None) or os.environ.get(TOKEN_ENV)
    if not token:
        raise UsageError(f"no token for video {video_id}: give --token or set {TOKEN_ENV}")
    api = args.api or (saved.api if saved else None) or os.environ.get(API_ENV) or DEFAULT_API
    return api, video_id, token


def status_command(args, reporter: Reporter) -> int:
    url, video_id, token = _target(args)
    status = _make_api(args, reporter)(url).status(video_id, token)
    reporter.note(_summary(status))
    _print(args, status, status["status"])
    if status["status"] == "failed":
        return errors.EXIT_JOIN_FAILED
    return errors.EXIT_OK


def download_command(args, reporter: Reporter) -> int:
    url, video_id, token = _target(args)
    result = download(_make_api(args, reporter)(url), video_id, token, args.output, reporter,
                      wait=not args.no_wait, wait_timeout=args.wait_timeout)
    reporter.note(f"video {video_id}: {format_size(result['bytes'])} of {result['content_type']} "
                  f"written to {result['path']}")
    _print(args, result, result["path"])
    return errors.EXIT_OK


def _summary(status: dict) -> str:
    """One line on a video's status, for people."""
    text = f"video {status['video_id']} is {status['status']}"
    if status["status"] == "ready":
        codecs = "/".join(c for c in (status.get("video_codec"), status.get("audio_codec")) if c)
        size = (f"{status['width']}x{status['height']}"
                if status.get("width") and status.get("height") else None)
        details = [f"{status['duration']:.1f} s" if status.get("duration") is not None else None,
                   size, codecs or None, status.get("container"),
                   format_size(status["byte_size"]) if status.get("byte_size") else None]
        text += ": " + ", ".join(d for d in details if d)
    elif status["status"] == "failed":
        text += f": {status.get('error') or 'no reason given'}"
    else:
        text += f" ({status['chunk_count']} chunks, {format_size(status['committed_bytes'])} committed)"
    return text


COMMANDS = {"upload": upload_command, "status": status_command, "download": download_command}
