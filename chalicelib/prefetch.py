"""Chunks read ahead of their reader, several at a time: store latency, not bandwidth, is
what a sequential read of many small objects waits on. At most PREFETCH chunks and about
PREFETCH_BYTES are in flight, so memory stays bounded whatever the chunk size."""
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

from chalicelib.transfers import carried

PREFETCH = 8
PREFETCH_BYTES = 24 * 1024 * 1024


def prefetch_in_order(indices: list[int], fetch: Callable[[int], bytes],
                      window: int = PREFETCH) -> Iterator[bytes]:
    """fetch(i) for each index, in order, with up to `window` fetches running ahead. Each
    runs in the caller's context, so what it reads counts for the caller's join."""
    with ThreadPoolExecutor(max_workers=window) as pool:
        futures = [pool.submit(carried(fetch), i) for i in indices[:window]]
        for position in range(len(indices)):
            ahead = position + window
            if ahead < len(indices):
                futures.append(pool.submit(carried(fetch), indices[ahead]))
            yield futures[position].result()
            futures[position] = None  # let the bytes go


def window_for(byte_count: int, chunk_count: int) -> int:
    """How many chunks to fetch ahead: PREFETCH, fewer when chunks are large."""
    average_chunk = max(1, byte_count // max(1, chunk_count))
    return max(2, min(PREFETCH, PREFETCH_BYTES // average_chunk))
