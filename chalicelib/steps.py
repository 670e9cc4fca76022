"""What the jobs made of steps share (each step runs in an invocation of its own): the MP4
rendition (chalicelib.renditions) and the re-encode of complete files that differ
(chalicelib.reencodes). Their files pass from step to step through the bucket, each job's
under `videos/<id>/<job>/<chunk count>/`.

Each job stores its plan last, after the files it names: a plan in the bucket says its
files are there too. A step stores its output, then lists what is stored: S3 lists what
was written before the listing, so the step that finishes last sees every output.
"""
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from aws_lambda_powertools import Logger

from chalicelib import leases
from chalicelib.errors import NotPlayable, StorageUnavailable
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.ports import Backend, ObjectStore
from chalicelib.settings import Settings
from chalicelib.transfers import carried

logger = Logger(child=True)

PLAN = "plan.json"
AUDIO = "audio.m4a"  # the audio step's output
# Transfers at once when a plan's files are stored, or the pieces fetched to be joined:
# dozens of files of a few megabytes each, each transfer waiting on S3 (its request,
# its first byte) more than on the network.
TRANSFERS_AT_ONCE = 8


def piece_name(index: int) -> str:
    """A piece step's output."""
    return f"piece-{index:05d}.mp4"


def outputs(pieces: list[int], audio: bool) -> set[str]:
    """The names of the files the steps of a plan store: one per piece, and the audio's."""
    return {piece_name(index) for index in pieces} | ({AUDIO} if audio else set())


class WorkFiles:
    def __init__(self, store: ObjectStore, job: str):
        self.store = store
        self.job = job  # its folder in the bucket (keys.WORK_JOBS)

    def names(self, video_id: int, chunks: int) -> set[str]:
        """What the job has stored so far for that chunk count."""
        return self.store.work_files(video_id, self.job, chunks)

    def get(self, video_id: int, chunks: int, name: str, work: str) -> str:
        """Download a stored file into the work directory; its path."""
        path = os.path.join(work, name)
        self.store.download_file(self.store.work_key(video_id, self.job, chunks, name), path)
        return path

    def get_many(self, video_id: int, chunks: int, names: list[str], work: str) -> list[str]:
        """Download stored files into the work directory a few at once; their paths, in
        the order of `names`."""
        with ThreadPoolExecutor(max_workers=TRANSFERS_AT_ONCE) as pool:
            return [done.result() for done in [pool.submit(carried(self.get), video_id, chunks, name, work)
                                               for name in names]]

    def put(self, video_id: int, chunks: int, path: str, name: str) -> None:
        self.store.upload_file(path, self.store.work_key(video_id, self.job, chunks, name),
                               "application/octet-stream")

    def put_plan(self, video_id: int, chunks: int, files: list[tuple[str, str]], plan: bytes,
                 work: str) -> None:
        """Store the files (path, name) a few at once, then the plan."""
        with ThreadPoolExecutor(max_workers=TRANSFERS_AT_ONCE) as pool:
            for done in [pool.submit(carried(self.put), video_id, chunks, path, name)
                         for path, name in files]:
                done.result()
        plan_path = os.path.join(work, PLAN)
        with open(plan_path, "wb") as out:
            out.write(plan)
        self.put(video_id, chunks, plan_path, PLAN)

    def read_plan(self, video_id: int, chunks: int, work: str) -> bytes:
        with open(self.get(video_id, chunks, PLAN, work), "rb") as plan:
            return plan.read()

    def delete(self, video_id: int, chunks: int) -> None:
        self.store.delete_work(video_id, self.job, chunks)


T = TypeVar("T")


class StepJob:
    """A job made of steps: its dependencies, and its files (`work`: its folder)."""

    job = "step"  # what the job is called in its leases, logs and failures

    def __init__(self, settings: Settings, backend: Backend, ffmpeg: Ffmpeg, work: str,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.catalog = backend.catalog
        self.queue = backend.queue
        self.store = backend.store
        self.files = WorkFiles(backend.store, work)
        self.ffmpeg = ffmpeg
        self.clock = clock

    def attempt(self, video_id: int, renew: Callable[[], bool],
                action: Callable[[str], T]) -> tuple[T | None, str | None]:
        """Run action(work) in a work directory of its own, renew() called every third of
        JOIN_STALL_SECONDS meanwhile (and as it starts): (its result, None), or (None, why
        it failed: NotPlayable's message, or the kind of fault, logged). S3 or the queue out
        of reach raises: the delivery is retried, this step alone."""
        with leases.renewed(renew, self.settings.join_stall_seconds / 3, self.job, video_id,
                            at_once=True), \
                tempfile.TemporaryDirectory(dir=self.settings.work_dir) as work:
            try:
                return action(work), None
            except NotPlayable as error:
                return None, error.message
            except StorageUnavailable:
                raise
            except Exception as error:
                logger.exception(f"{self.job} step failed unexpectedly", extra={"video_id": video_id})
                return None, f"the {self.job} failed ({type(error).__name__})"
