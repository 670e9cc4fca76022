"""The bytes the object store moves: read through this process (GetObject bodies, ranged
reads), written through it (PutObject, UploadPart, file uploads), and copied by S3 itself
(UploadPartCopy, CopyObject), which never pass through here and cost none of its bandwidth.

On the emulator a server-side copy costs as much wall time as a PUT, so time alone hides
whether a join moves its recording's bytes or has S3 do it; these counts tell them apart.

Each store owns a TransferCounter with the process's totals. A per-store total cannot tell
two joins apart that run at once in one process (the store is shared), so a join counts in
a scope of its own as well: `with scope() as moved:` gives a counter that every count made
in this context adds to. Threads do not inherit a context: work a join hands to a pool
goes through `carried(...)`, which runs it in a copy of the submitter's context.
"""
import contextlib
import contextvars
import threading
from dataclasses import dataclass
from typing import Callable, Iterator


@dataclass(frozen=True)
class Transfers:
    read: int = 0
    written: int = 0
    copied_in_s3: int = 0

    @property
    def through_us(self) -> int:
        """What passed through this process, both ways."""
        return self.read + self.written

    def __sub__(self, other: "Transfers") -> "Transfers":
        return Transfers(self.read - other.read, self.written - other.written,
                         self.copied_in_s3 - other.copied_in_s3)

    def as_log(self) -> dict[str, int]:
        return {"bytes_read": self.read, "bytes_written": self.written,
                "bytes_copied_in_s3": self.copied_in_s3}


class TransferCounter:
    """Thread-safe running totals: uploads and prefetches count from their own threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._read = self._written = self._copied = 0

    def count(self, read: int = 0, written: int = 0, copied_in_s3: int = 0) -> None:
        """Add to this counter and to the scope of the context counting, if there is one."""
        self._add(read, written, copied_in_s3)
        scoped = _scope.get()
        if scoped is not None and scoped is not self:
            scoped._add(read, written, copied_in_s3)

    def snapshot(self) -> Transfers:
        with self._lock:
            return Transfers(self._read, self._written, self._copied)

    def _add(self, read: int, written: int, copied_in_s3: int) -> None:
        with self._lock:
            self._read += read
            self._written += written
            self._copied += copied_in_s3


_scope: contextvars.ContextVar[TransferCounter | None] = contextvars.ContextVar(
    "transfer_scope", default=None)


@contextlib.contextmanager
def scope() -> Iterator[TransferCounter]:
    """A counter of what the store moves for this context (and work `carried` from it)
    until the block ends."""
    counter = TransferCounter()
    token = _scope.set(counter)
    try:
        yield counter
    finally:
        _scope.reset(token)


def carried(function: Callable) -> Callable:
    """`function`, to run in another thread in a copy of the caller's context: its counts
    go to the caller's scope. A copy per call, since one context cannot be entered by two
    threads at once."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(function, *args, **kwargs)
