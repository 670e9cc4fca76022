"""Video ids handed out from blocks reserved on one shared counter, the same way by both
catalogs (see chalicelib/adapters/dynamodb.py for why blocks, and what gaps they leave)."""
import threading
from typing import Callable


class IdBlocks:
    """This instance's block of ids. `reserve(size)` adds `size` to the shared counter
    atomically and answers its new value: the block up to that value is this instance's."""

    def __init__(self, size: int, reserve: Callable[[int], int]):
        if size < 1:
            raise ValueError(f"id_block_size must be at least 1, not {size}")
        self.size = size
        self._reserve = reserve
        # Threads of one process share the block, so the lock makes each id go to one create
        # only; it is held across a reservation, so the other threads wait for it rather
        # than each reserving a block of their own.
        self._lock = threading.Lock()
        self._next = 1
        self._last = 0

    def next_id(self) -> int:
        with self._lock:
            if self._next > self._last:
                self._last = self._reserve(self.size)
                self._next = self._last - self.size + 1
            video_id = self._next
            self._next += 1
            return video_id
