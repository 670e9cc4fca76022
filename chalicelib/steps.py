"""What the jobs made of steps share (each step runs in an invocation of its own): the MP4
rendition (chalicelib.renditions) and the re-encode of complete files that differ
(chalicelib.reencodes). Their files pass from step to step through the bucket, each job's
under `videos/<id>/<job>/<chunk count>/`.

Each job stores its plan last, after the files it names: a plan in the bucket says its
files are there too. A step stores its output, then lists what is stored: S3 lists what
was written before the listing, so the step that finishes last sees every output.
"""
import contextlib
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from aws_lambda_powertools import Logger

from chalicelib import leases
from chalicelib.errors import NotPlayable, StorageUnavailable
from chalicelib.media import mp4_join
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.ports import Backend, Composition, ObjectStore
from chalicelib.prefetch import prefetch_in_order
from chalicelib.settings import Settings
from chalicelib.transfers import carried

logger = Logger(child=True)

PLAN = "plan.json"
AUDIO = "audio.m4a"  # the audio step's output
# Transfers at once when a plan's files are stored, or the pieces fetched to be joined:
# dozens of files of a few megabytes each, each transfer waiting on S3 (its request,
# its first byte) more than on the network.
TRANSFERS_AT_ONCE = 8
# The first bytes of an MP4 read to find its index: a piece's (written index first) is a
# few tens of kB for a minute of video, so one ranged read has it all.
HEAD_BYTES = 256 * 1024
# The parts an object streamed into an upload is sent in, as large as the file transfers'.
PART_BYTES = 8 * 1024 * 1024


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
        return _at_once(lambda name: self.get(video_id, chunks, name, work), names)

    def read_heads(self, video_id: int, chunks: int, names: list[str]) -> list[tuple[bytes, bytes]]:
        """The (ftyp, moov) of stored MP4s, by ranged reads (a few at once), in order."""
        def read_head(name: str) -> tuple[bytes, bytes]:
            key = self.store.work_key(video_id, self.job, chunks, name)
            first = self.store.read(key, 0, HEAD_BYTES)

            def read_at(offset: int, count: int) -> bytes:
                if offset + count <= len(first) or len(first) < HEAD_BYTES:  # or all there is
                    return first[offset:offset + count]
                return self.store.read(key, offset, count)
            return mp4_join.read_head(read_at)
        return _at_once(read_head, names)

    def publish_joined(self, video_id: int, chunks: int, joined: mp4_join.Joined, names: list[str],
                       local: list[str], work: str, key: str, content_type: str) -> None:
        """Publish the joined file at key, streamed into a multipart upload as it is made:
        the stored files `names` (the joined pieces) are fetched in order, TRANSFERS_AT_ONCE
        ahead of the one being copied, and removed once copied; `local` (the audio) follow
        them in the join's numbering. So the parts go up while later pieces come down, and
        neither the work directory nor memory ever holds the whole file."""
        paths: list[str | None] = []
        fetched = prefetch_in_order(list(range(len(names))), lambda number: self.get(
            video_id, chunks, names[number], work), window=TRANSFERS_AT_ONCE)

        def path_of(source: int) -> str:
            if source >= len(names):
                return local[source - len(names)]
            while len(paths) <= source:  # a piece's spans all come before the next piece's
                paths.append(next(fetched))
            return paths[source]

        def done_with(source: int) -> None:
            if source < len(names):
                os.unlink(paths[source])

        composition = self.store.start_composition(key, content_type)
        try:
            with contextlib.closing(fetched):
                parts = Parts(composition)
                mp4_join.copy(joined, path_of, parts, done_with)
                parts.close()
        except BaseException:
            composition.abort()
            raise
        composition.complete()

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


def _at_once(function: Callable, names: list[str]) -> list:
    """function(name) for each name, TRANSFERS_AT_ONCE at once, each in a copy of the
    caller's context (what it moves counts for the caller); the results in order."""
    with ThreadPoolExecutor(max_workers=TRANSFERS_AT_ONCE) as pool:
        return [done.result() for done in [pool.submit(carried(function), name) for name in names]]


class Parts:
    """A writer that sends what is written to a composition, in order, in parts of
    PART_BYTES (the last one shorter). Composition.send holds back a writer faster than S3."""

    def __init__(self, composition: Composition):
        self.composition = composition
        self.pending = bytearray()
        self.number = 0

    def write(self, data: bytes) -> int:
        self.pending += data
        while len(self.pending) >= PART_BYTES:
            self._send(bytes(self.pending[:PART_BYTES]))
            del self.pending[:PART_BYTES]
        return len(data)

    def close(self) -> None:
        if self.pending or not self.number:
            self._send(bytes(self.pending))
            self.pending.clear()

    def _send(self, part: bytes) -> None:
        self.number += 1
        self.composition.send(self.number, part)


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
