"""Upload a file as a video: create it (or take up the one an interrupted run left), send
the bytes the API does not hold yet in chunks, finalize, and wait until it is joined.

Every chunk carries its place in the file (Content-Range, with the file's size as the
total, so the last chunk also finalizes) and its SHA-256 (Content-Digest). The offset
always comes from the API: from each answer's Upload-Offset, from the status on a resume,
and from a 409/416 when the API's copy and ours disagree (a chunk whose answer was lost
was committed all the same): the upload continues from there, never sending the API bytes
it holds. Chunks the API cannot take in a request body go as pieces: PUT to a presigned S3
URL, then committed.
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from uploader import state as states
from uploader.client import Api, Committed
from uploader.errors import ApiRefused, JoinFailed, RangeConflict, UsageError, WaitTimedOut
from uploader.progress import Reporter, move_to
from uploader.sizes import format_size

# The API's MAX_CHUNK_BYTES unless a deployment sets it otherwise (API Gateway and Lambda
# carry about 4.5 MB of raw body); a 413 tells the real one, which is then used.
API_BODY_LIMIT = 4_500_000
# Under the body limit, and a round number of MiB.
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
# Conflicts in a row that do not move the offset: then the API and this file disagree on
# something other than where to continue, and the upload stops.
MAX_CONFLICTS_IN_PLACE = 3

# The Content-Types the API takes, by extension (it sniffs the bytes anyway; on AWS the type
# must be one of the API's binary media types for the body to arrive intact).
CONTENT_TYPES = {".webm": "video/webm", ".weba": "audio/webm", ".mkv": "video/x-matroska",
                 ".mka": "audio/x-matroska", ".mp4": "video/mp4", ".m4v": "video/mp4",
                 ".m4a": "audio/mp4", ".mov": "video/quicktime", ".ogv": "video/ogg",
                 ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg"}


def content_type_of(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


@dataclass(frozen=True)
class UploadOptions:
    api_url: str
    api_url_given: bool  # --api on the command line: a resume elsewhere is refused
    chunk_size: int = DEFAULT_CHUNK_SIZE
    pieces: bool = False  # every chunk through a presigned URL
    state_dir: Path | None = None
    restart: bool = False


@dataclass(frozen=True)
class UploadResult:
    state: states.UploadState
    status: dict  # the API's status of the video once finalized
    resumed_from: int | None  # the committed offset an interrupted upload was taken up at
    sent_bytes: int  # file bytes this run sent in chunks and pieces (not counting retries)


class _SliceReader:
    """`size` bytes of a file from `first`, read as requests streams a body; `on_read` is
    told how many went, for the progress bar. len() gives requests its Content-Length."""

    def __init__(self, path: Path, first: int, size: int, on_read: Callable[[int], None]):
        self._file = open(path, "rb")
        self._file.seek(first)
        self._left = size
        self._size = size
        self._on_read = on_read

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        if amount is None or amount < 0 or amount > self._left:
            amount = self._left
        data = self._file.read(amount)
        self._left -= len(data)
        if not data:
            self._file.close()
        self._on_read(len(data))
        return data


class Upload:
    """One run of `upload FILE`."""

    def __init__(self, path: Path, options: UploadOptions, make_api: Callable[[str], Api],
                 reporter: Reporter):
        self.path = path
        self.options = options
        self.make_api = make_api
        self.reporter = reporter
        self.body_limit = API_BODY_LIMIT
        self.sent_bytes = 0

    def run(self) -> UploadResult:
        """Up to the finalize; waiting for the join is wait_until_joined's."""
        path, options = self.path, self.options
        if not path.is_file():
            raise UsageError(f"{path} is not a file")
        size = path.stat().st_size
        if size == 0:
            raise UsageError(f"{path} is empty: there is nothing to upload")
        state_file = states.state_path(path, options.state_dir)
        state = None if options.restart else states.load(state_file)
        resumed_from = None
        if state is None:
            api = self.make_api(options.api_url)
            state = self._create(api, size, state_file)
            offset, finalized = 0, False
        else:
            api = self._api_of(state, state_file)
            offset, finalized = self._resume_point(api, state, size, state_file)
            resumed_from = offset
        bar = self.reporter.bar(size, offset, f"video {state.video_id}")
        try:
            if not finalized:
                self._send(api, state, size, offset, bar)
        finally:
            bar.close()
        # Idempotent, and the last chunk finalized the video already (its Content-Range
        # reached the total); asked anyway, it answers the status to wait on.
        status = api.finalize(state.video_id, state.upload_token)
        states.remove(state_file)
        self.reporter.note(f"video {state.video_id}: {format_size(size)} uploaded and finalized; "
                           f"playback link: {api.playback_url(state.video_id, state.playback_token)}")
        return UploadResult(state, status, resumed_from, self.sent_bytes)

    def _create(self, api: Api, size: int, state_file: Path) -> states.UploadState:
        created = api.create()
        stat = self.path.stat()
        state = states.UploadState(api.url, int(created["video_id"]), created["upload_token"],
                                   created["playback_token"], size, stat.st_mtime_ns)
        # Before the first byte goes: from here on a run cut short can be resumed.
        states.save(state_file, state)
        self.reporter.note(f"video {state.video_id} created on {api.url}; "
                           f"upload state in {state_file}")
        return state

    def _api_of(self, state: states.UploadState, state_file: Path) -> Api:
        """The API the interrupted upload went to (the video exists there only)."""
        wanted = self.options.api_url.rstrip("/")
        if self.options.api_url_given and wanted != state.api:
            raise UsageError(f"{state_file} is an upload of {self.path} to {state.api}, not to {wanted}: "
                             "leave out --api to resume it, or use --restart to start a new video")
        if not state.describes(self.path):
            raise UsageError(f"{self.path} changed since its upload to video {state.video_id} began "
                             f"(see {state_file}); --restart uploads it as a new video")
        return self.make_api(state.api)

    def _resume_point(self, api: Api, state: states.UploadState, size: int,
                      state_file: Path) -> tuple[int, bool]:
        try:
            status = api.status(state.video_id, state.upload_token)
        except ApiRefused as refused:
            if refused.status in (403, 404):
                raise UsageError(f"video {state.video_id} of {state_file} cannot be resumed "
                                 f"({refused}); --restart uploads the file as a new video") from None
            raise
        offset = int(status["committed_bytes"])
        if offset > size:
            raise UsageError(f"video {state.video_id} holds {offset} bytes, more than the "
                             f"{size} of {self.path}; --restart uploads it as a new video")
        if status.get("finalized") and offset != size:
            raise UsageError(f"video {state.video_id} was finalized at {offset} of the {size} bytes "
                             f"of {self.path}; --restart uploads it as a new video")
        self.reporter.note(f"resuming video {state.video_id} at byte {offset} of {size} "
                           f"({status['chunk_count']} chunks committed)")
        return offset, bool(status.get("finalized"))

    def _send(self, api: Api, state: states.UploadState, size: int, offset: int, bar) -> None:
        conflicts_in_place = 0
        while offset < size:
            length = min(self.options.chunk_size, size - offset)
            as_piece = self.options.pieces or length > self.body_limit
            try:
                if as_piece:
                    committed = self._send_piece(api, state, offset, length, size, bar)
                else:
                    committed = self._append(api, state, offset, length, size)
            except RangeConflict as conflict:
                where = conflict.offset
                if where is None:  # a 416 names no offset: the status does
                    where = int(api.status(state.video_id, state.upload_token)["committed_bytes"])
                conflicts_in_place = conflicts_in_place + 1 if where == offset else 0
                if conflicts_in_place >= MAX_CONFLICTS_IN_PLACE or where > size:
                    raise
                self.reporter.note(f"the API holds {where} bytes, not {offset}: continuing from "
                                   f"byte {where} ({conflict})")
                offset = where
                move_to(bar, offset)
                continue
            except ApiRefused as refused:
                if refused.status == 413 and not as_piece:
                    # A lower limit on the way (this deployment's MAX_CHUNK_BYTES, which the
                    # API's 413 names; a proxy's, which may not): this chunk and larger ones
                    # go as pieces, whose bytes go to S3 directly.
                    limit = refused.details.get("limit_bytes")
                    self.body_limit = min(int(limit or length - 1), length - 1)
                    said = f"at most {limit} bytes" if limit else f"no {length} bytes"
                    self.reporter.note(f"a request body may hold {said} on the way to the API "
                                       "(413): larger chunks go as pieces, through presigned URLs")
                    continue
                if refused.code == "VideoFinalized" and refused.offset == size:
                    break  # the last chunk, sent by a run cut short, arrived meanwhile
                raise
            conflicts_in_place = 0
            offset = committed.offset
            move_to(bar, offset)

    def _append(self, api: Api, state: states.UploadState, offset: int, length: int,
                size: int) -> Committed:
        with open(self.path, "rb") as file:
            file.seek(offset)
            chunk = file.read(length)
        if len(chunk) != length:
            raise UsageError(f"{self.path} became shorter during the upload")
        self.sent_bytes += length
        return api.append(state.video_id, state.upload_token, chunk, offset, size,
                          content_type_of(self.path))

    def _send_piece(self, api: Api, state: states.UploadState, offset: int, length: int,
                    size: int, bar) -> Committed:
        piece = api.start_piece(state.video_id, state.upload_token)
        if int(piece["first_byte"]) != offset:
            # The API's recording ends elsewhere: a conflict, before any byte is sent.
            raise RangeConflict(f"the API would put the piece at byte {piece['first_byte']}, "
                                f"not {offset}", 409, "RangeConflict",
                                {"committed_bytes": int(piece["first_byte"])})
        if length > int(piece["max_bytes"]):
            raise UsageError(f"a piece may be at most {piece['max_bytes']} bytes on this API: "
                             "use a smaller --chunk-size")
        sent = [0]

        def on_read(count: int) -> None:
            sent[0] += count
            move_to(bar, offset + sent[0])

        def body() -> IO[bytes]:
            sent[0] = 0
            move_to(bar, offset)
            return _SliceReader(self.path, offset, length, on_read)

        api.put_piece(piece["upload_url"], body)
        self.sent_bytes += length
        return api.commit_piece(state.video_id, state.upload_token, piece["piece_id"], offset,
                                length, size)


def wait_until_joined(get_status: Callable[[], dict], timeout: float, reporter: Reporter,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic,
                      status: dict | None = None) -> dict:
    """Poll the status until the video is ready (returned) or failed (JoinFailed), for at
    most `timeout` seconds (then WaitTimedOut). Starts from `status` when one is at hand."""
    deadline = clock() + timeout
    interval = 0.5
    noted = False
    while True:
        status = status or get_status()
        if status["status"] == "ready":
            return status
        if status["status"] == "failed":
            raise JoinFailed(f"video {status['video_id']} failed to join: "
                             f"{status.get('error') or 'no reason given'}", status)
        if clock() >= deadline:
            raise WaitTimedOut(f"video {status['video_id']} is still {status['status']} after "
                               f"{timeout:g} s; ask again with: python -m uploader status "
                               f"{status['video_id']} --token <playback token>", status)
        if not noted:
            reporter.note(f"video {status['video_id']} is being joined; waiting for it")
            noted = True
        sleep(min(interval, max(0.0, deadline - clock())))
        interval = min(interval * 1.5, 5.0)
        status = None
