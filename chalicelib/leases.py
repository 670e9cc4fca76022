"""A job's lease, kept alive while it works: the join's and the rendition's.

A job that claims work in the catalog renews its claim every third of JOIN_STALL_SECONDS
while it runs; a job whose worker dies (killed, out of time or memory) stops renewing, and
the next request takes the work over once the claim is that old.
"""
import contextlib
import threading
from typing import Callable

from aws_lambda_powertools import Logger

from chalicelib.errors import StorageUnavailable

logger = Logger(child=True)


@contextlib.contextmanager
def renewed(renew: Callable[[], bool], every_seconds: float, what: str, video_id: int,
            at_once: bool = False):
    """Call renew() every every_seconds in a thread while the block runs (and, with at_once,
    as it starts), until it says False (the claim is over, or another job took it). An
    outage is logged and tried again at the next beat."""
    stop = threading.Event()

    def beat() -> None:
        if at_once or not stop.wait(every_seconds):
            while True:
                try:
                    if not renew():
                        return
                except StorageUnavailable:
                    logger.warning(f"could not renew the {what}'s lease", extra={"video_id": video_id})
                if stop.wait(every_seconds):
                    return

    heart = threading.Thread(target=beat, name=f"{what}-lease-{video_id}", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join()
