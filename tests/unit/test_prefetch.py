import random
import time

from chalicelib.prefetch import PREFETCH, prefetch_in_order, window_for


def test_prefetch_keeps_order_whatever_finishes_first():
    def fetch(index):
        time.sleep(random.random() / 100)
        return bytes([index])

    assert list(prefetch_in_order(list(range(30)), fetch, window=5)) == [bytes([i]) for i in range(30)]


def test_fewer_chunks_are_fetched_ahead_when_they_are_large():
    assert window_for(byte_count=8 * 300_000, chunk_count=8) == PREFETCH
    assert window_for(byte_count=10 * 4_500_000, chunk_count=10) == 5  # 24 MiB in flight at most
    assert window_for(byte_count=500_000_000, chunk_count=1) == 2
