"""The join queue in memory: the SQS queue's twin for fast tests, with delayed messages on
a clock a test can move (tests/integration/test_contracts.py holds both to one contract)."""
import dataclasses
import threading
import time
from typing import Callable

from chalicelib.ports import RENDITION, JoinRequest


class MemoryQueue:
    """Join requests with their due time on a clock (time.time, or a test's)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._messages: list[tuple[float, int, JoinRequest]] = []
        self._sequence = 0
        self._lock = threading.Lock()

    def schedule_join(self, video_id: int, delay_seconds: int = 0, urgent: bool = False) -> None:
        self._add([JoinRequest(video_id, urgent)], delay_seconds)

    def schedule_rendition(self, video_id: int, delay_seconds: int = 0) -> None:
        self._add([JoinRequest(video_id, False, RENDITION)], delay_seconds)

    def schedule_steps(self, requests: list[JoinRequest]) -> None:
        self._add(requests)

    def _add(self, requests: list[JoinRequest], delay_seconds: int = 0) -> None:
        with self._lock:
            due = self.clock() + min(delay_seconds, 900)
            for request in requests:
                self._sequence += 1
                self._messages.append((due, self._sequence, request))

    def receive(self, wait_seconds: int = 0) -> "MemoryDelivery | None":
        with self._lock:
            now = self.clock()
            due = sorted(m for m in self._messages if m[0] <= now)
            if not due:
                return None
            self._messages.remove(due[0])
            return MemoryDelivery(due[0][2])

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        pass  # a delivery here is off the queue once received: nothing comes back

    def waiting(self) -> tuple[int, int]:
        with self._lock:
            now = self.clock()
            visible = sum(1 for due, _, _ in self._messages if due <= now)
            return visible, len(self._messages) - visible


@dataclasses.dataclass
class MemoryDelivery:
    request: JoinRequest

    def acknowledge(self) -> None:
        pass  # taken off the queue when received: there is no visibility timeout here
