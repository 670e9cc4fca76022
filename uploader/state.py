"""The state of an upload in progress, kept in a small JSON file so that a run cut short
(killed, Ctrl-C, the network gone) can be resumed by running the same command again.

It holds the API's URL, the video id and both tokens, and what the file was (size, mtime):
not the committed offset, which the API reports (GET /videos/<id>) and which is the only
trustworthy one: a chunk whose answer was lost is committed all the same. The upload token
can append to and delete the video, so the file is created mode 0600. By default it sits
next to the uploaded file as `FILE.upload.json`; with a state directory, it is named after
the file's absolute path there. It is removed once the video is finalized.
"""
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from uploader.errors import UsageError

SUFFIX = ".upload.json"


@dataclass(frozen=True)
class UploadState:
    api: str
    video_id: int
    upload_token: str
    playback_token: str
    file_size: int
    file_mtime_ns: int

    def describes(self, path: Path) -> bool:
        """Whether the file is still the one whose bytes were being sent (a file changed
        since would not continue the bytes the API holds)."""
        stat = path.stat()
        return (stat.st_size, stat.st_mtime_ns) == (self.file_size, self.file_mtime_ns)


def state_path(file: Path, state_dir: Path | None = None) -> Path:
    """Where the state of an upload of `file` is kept."""
    if state_dir is None:
        return file.with_name(file.name + SUFFIX)
    # Two files of the same name in different folders must not share a state file.
    where = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
    return state_dir / f"{file.name}.{where}{SUFFIX}"


def load(path: Path) -> UploadState | None:
    """The state in `path`, or None when there is none."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return UploadState(**json.loads(raw))
    except (ValueError, TypeError) as error:
        raise UsageError(f"the state file {path} cannot be read ({error}); "
                         "remove it or run again with --restart") from None


def save(path: Path, state: UploadState) -> None:
    """Write the state atomically (a temporary file renamed over it), readable by its owner
    only: it holds the upload token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            os.fchmod(out.fileno(), 0o600)  # O_CREAT's mode applies to a new file only
            json.dump(asdict(state), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
