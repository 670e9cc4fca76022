"""The service's three ports to the outside: the video catalog, the object store and the
join queue. Each has two implementations held to one contract (tests/integration/
test_contracts.py): the AWS one (`chalicelib.adapters.dynamodb`, `.s3`, `.sqs`) and an
in-memory one (`chalicelib.adapters.memory_catalog`, `.memory_store`, `.memory_queue`)
for fast tests.

Every implementation raises only the errors of `chalicelib.errors`: ConditionFailed when
a conditional write does not apply, ChunkMissing for a chunk not stored, StorageUnavailable
when the service behind it fails. Keys are opaque outside the store: only the store knows
where things are.
"""
from dataclasses import dataclass
from typing import Protocol

from chalicelib.models import MediaSummary, Rendition, Video


class Catalog(Protocol):
    """The id counter and one record per video. Every change is one atomic, conditional
    write, so concurrent appends and joins never lose an update."""

    def create(self, token_hash: str, playback_token_hash: str, now: float) -> Video:
        """A new video with an id no other video has: 1, 2, 3... with a block size of 1; with
        more, this instance's next id from the block it reserved last (see
        chalicelib/adapters/dynamodb.py)."""

    def set_playback_token(self, video_id: int, playback_token_hash: str) -> None:
        """A new read-only token; the one before stops working."""

    def get(self, video_id: int) -> Video | None: ...

    def claim_chunk(self, video_id: int, size: int, digest: str, token_hash: str | None,
                    now: float, first: int | None = None) -> Video:
        """Reserve the next chunk index for `size` bytes with this SHA-256, count them,
        remember the chunk as the last one and note that a join is wanted. Returns the record
        as it was before: its chunk_count is the new chunk's index, its byte_count where the
        chunk starts. A retry of this very write finds the condition false, so one append
        never claims twice.
        ConditionFailed, carrying the record as it is (None when there is no video), when
        the token hash differs, the video is finalized, `first` is given and is not where
        the recording ends, or `first` is not given and the chunk is the last one again."""

    def unclaim_chunk(self, video_id: int, before: Video, digest: str) -> bool:
        """Undo the claim that found the record `before` (the chunk could not be stored): its
        counts, times and join request are as they were, unless another chunk was claimed
        since; False then."""

    def finalize(self, video_id: int, now: float) -> Video:
        """No more appends (the first finalize counts). Returns the record after.
        ConditionFailed when there is no video."""

    def release_chunk(self, video_id: int, index: int, size: int) -> None:
        """Mark a claimed index as never stored (its upload failed), so joins skip it."""

    def request_join(self, video_id: int, now: float, stall_seconds: int,
                     urgent: bool = False) -> bool:
        """Note that a join is wanted; False if one of that kind was asked for less than
        stall_seconds ago. At most one join of each kind is pending per video."""

    def renew_join_request(self, video_id: int, now: float) -> None:
        """A waiting join put itself back on the queue: it is still pending, not stalled."""

    def start_join(self, video_id: int, now: float, attempt: int = 1) -> Video:
        """Take the pending requests (appends from now on ask for another join) and the
        lease: join_started_at and join_alive_at are now; join_attempt is `attempt`."""

    def renew_join_lease(self, video_id: int, started_at: float, now: float) -> bool:
        """The heartbeat of the join that started at started_at; False when that join is
        over or another took its place."""

    def finish_join(self, video_id: int, chunk_count: int, compiled_key: str,
                    poster_key: str | None, media: MediaSummary) -> list[str]:
        """Record a compiled object unless one of as many chunks or more is recorded.
        Returns the keys of the objects it replaces (video, poster and the rendition of the
        older object, which it forgets), for deletion.
        ConditionFailed when a join of more chunks finished first."""

    def request_rendition(self, video_id: int, chunk_count: int, now: float,
                          stall_seconds: int) -> bool:
        """Note that the MP4 rendition of the compiled object of chunk_count chunks is wanted
        (state pending); False when that is not the compiled object, its rendition has a
        result, or one was asked for (or its job beat) less than stall_seconds ago."""

    def renew_rendition(self, video_id: int, chunk_count: int, now: float) -> bool:
        """The heartbeat of a running rendition job; False when no rendition of chunk_count
        chunks is pending (the video changed or is gone)."""

    def finish_rendition(self, video_id: int, rendition: Rendition) -> list[str]:
        """Record a rendition's result (ready, failed, too_long) for rendition.chunks.
        Returns the keys of the rendition objects it replaces. ConditionFailed when that is
        not the compiled object any more (a newer join, a deleted video) or a rendition of a
        newer one is recorded."""

    def fail_join(self, video_id: int, chunk_count: int, reason: str) -> None:
        """Record why these chunks do not make a video, unless a newer result exists."""

    def end_join(self, video_id: int) -> None:
        """A join that stopped without a result (it will be retried)."""

    def commit_segment(self, video_id: int, segment_count: int, segmented_bytes: int) -> None:
        """Count one more folded segment. ConditionFailed when another job committed that
        segment first, or the video was found unfoldable."""

    def stop_segments(self, video_id: int, reason: str) -> None:
        """This video cannot be folded; its joins read the chunks."""

    def delete(self, video_id: int, updated_before: float | None = None) -> None:
        """Remove the record; with updated_before, only if no chunk came since then and it
        has no compiled object (an abandoned recording). ConditionFailed otherwise."""

    def abandoned(self, updated_before: float, limit: int = 100) -> list[int]:
        """Ids of recordings with no compiled object and no append since updated_before."""


class Composition(Protocol):
    """One object written from parts (an S3 multipart upload): each part sent, or copied
    from a segment without passing through here, in the background and in any order.
    Every part but the last must be at least 5 MiB. Whoever starts one completes or
    aborts it."""

    key: str
    upload_id: str

    @property
    def held(self) -> set[int]:
        """Part numbers S3 held already when this composition was resumed with its parts."""

    def send(self, number: int, body: bytes) -> None: ...

    def copy_segment(self, number: int, video_id: int, segment: int, size: int,
                     extended_to: int | None = None) -> None:
        """Part `number` is the segment (its extension up to `extended_to`, when given),
        copied by S3; `size` is its length as the fold recorded it, counted as copied in S3
        (S3's answer to a copy does not say)."""

    def wait(self) -> None:
        """Wait for the parts sent or copied so far; the upload stays open (a draft).
        UploadGone when it was completed or aborted meanwhile."""

    def complete(self) -> None:
        """Wait for every part and publish the object; on any failure abort, then raise."""

    def abort(self) -> None:
        """Drop the parts; the object never appears. Safe to call more than once."""


class ObjectStore(Protocol):
    """Chunks, folded segments with their state, compiled videos and posters."""

    def put_chunk(self, video_id: int, index: int, body: bytes) -> None: ...

    def read_chunk(self, video_id: int, index: int, first_byte: int = 0,
                   max_bytes: int | None = None) -> bytes:
        """The chunk's bytes from first_byte, at most max_bytes of them (b"" past its end):
        a large chunk is read a block at a time. ChunkMissing when it is not stored."""

    def piece_upload_url(self, video_id: int, piece_id: str, expires_in: int) -> str:
        """A URL the client PUTs a large piece to, straight into the store."""

    def piece_size(self, video_id: int, piece_id: str) -> int | None:
        """The uploaded piece's length; None when nothing was uploaded there."""

    def commit_piece(self, video_id: int, piece_id: str, index: int) -> None:
        """Move the piece to chunk `index` (copied within the store, then removed). Done
        already when the piece is gone and the chunk is there."""

    def delete_piece(self, video_id: int, piece_id: str) -> None: ...

    def put_segment(self, video_id: int, number: int, body: bytes) -> None: ...

    def read_segment(self, video_id: int, number: int, first_byte: int = 0,
                     extended_to: int | None = None) -> bytes:
        """The segment's bytes (its extension's, with `extended_to`) from first_byte to its end."""

    def put_fold_state(self, video_id: int, segment_count: int, state: bytes) -> None: ...

    def read_fold_state(self, video_id: int, segment_count: int) -> bytes: ...

    def extend_segment(self, video_id: int, number: int, size: int, extended_to: int,
                       body: bytes) -> None:
        """Store the segment (`size` bytes long) followed by `body` as its extension up to
        `extended_to` (the segment is copied by S3, only `body` is sent). The segment stays."""

    def delete_extended_segment(self, video_id: int, number: int, extended_to: int) -> None: ...

    def put_extension(self, video_id: int, segment_count: int, state: bytes) -> None:
        """Where the extension of the last of segment_count segments stands (replaced each time)."""

    def read_extension(self, video_id: int, segment_count: int) -> bytes | None:
        """None when the last of segment_count segments was never extended."""

    def compiled_key(self, video_id: int, chunk_count: int, extension: str) -> str:
        """Where the join of chunk_count chunks is published: a join never overwrites the
        object a reader is being sent to, and running it twice writes the same key."""

    def upload_file(self, path: str, key: str, content_type: str) -> None:
        """Publish a local file at key, to be played inline."""

    def start_composition(self, key: str, content_type: str) -> Composition: ...

    def resume_composition(self, key: str, upload_id: str,
                           list_parts: bool = False) -> Composition | None:
        """An upload started earlier, to add parts to or complete. With list_parts, the
        parts S3 holds are listed (they are in the object unless sent or copied again), and
        None when the upload is no more; without, UploadGone tells that at wait()."""

    def draft_key(self, video_id: int, segment_count: int, extension: str) -> str:
        """Where the draft the fold starts at segment_count segments is published."""

    def delete(self, key: str) -> None:
        """Remove an object; removing one that is not there is no error."""

    def delete_video(self, video_id: int) -> None:
        """Remove every object of the video, and abort its unfinished multipart uploads."""

    def delete_sources(self, video_id: int) -> None:
        """Remove the chunks and segments the video was made from; its compiled object and
        poster stay."""

    def presigned_get(self, key: str, download: bool = False) -> str:
        """A URL that reads the object (Range included) for a while, signed now; with
        `download`, served as an attachment named video-<id>.<ext> (saved, not played)."""

    def rendition_key(self, video_id: int, chunk_count: int) -> str:
        """Where the MP4 rendition of the compiled object of chunk_count chunks goes (under
        compiled/: kept when the sources go, removed with the video)."""

    def download_file(self, key: str, path: str) -> None:
        """Write the object at key to a local file."""

    def read(self, key: str, first_byte: int, max_bytes: int) -> bytes:
        """At most max_bytes of the object at key from first_byte (b"" past its end): a
        ranged read, for the few bytes of a large object that are wanted (a file's index)."""

    def work_key(self, video_id: int, job: str, chunk_count: int, name: str) -> str:
        """Where a file passed between the steps of a job in pieces goes (`job`: WORK_JOBS)
        for the compiled chunk count it is of."""

    def work_files(self, video_id: int, job: str, chunk_count: int) -> set[str]:
        """The names of the files that job's steps have stored so far."""

    def delete_work(self, video_id: int, job: str, chunk_count: int) -> None:
        """Remove the files of that job's steps."""

JOIN = "join"
# The MP4 rendition, one message per step (chalicelib.renditions): RENDITION plans it (the
# message a join sends, as it always was), then one RENDITION_PIECE per piece and one
# RENDITION_AUDIO run at once, and the last of them to finish sends RENDITION_ASSEMBLE.
RENDITION = "rendition"
RENDITION_PIECE = "rendition_piece"
RENDITION_AUDIO = "rendition_audio"
RENDITION_ASSEMBLE = "rendition_assemble"
RENDITION_STEPS = (RENDITION_PIECE, RENDITION_AUDIO, RENDITION_ASSEMBLE)
# Complete files that differ, re-encoded by steps of the join (chalicelib.reencodes): one
# REENCODE_PART per file and one REENCODE_AUDIO; the last to finish asks for the join again.
REENCODE_PART = "reencode_part"
REENCODE_AUDIO = "reencode_audio"
REENCODE_STEPS = (REENCODE_PART, REENCODE_AUDIO)


@dataclass(frozen=True)
class JoinRequest:
    video_id: int
    urgent: bool  # someone waits to play the video: join now, not after the pause
    kind: str = JOIN  # JOIN, RENDITION, or one of RENDITION_STEPS or REENCODE_STEPS
    chunks: int | None = None  # a step's: the chunk count it is of
    piece: int | None = None  # RENDITION_PIECE's and REENCODE_PART's: the piece's index
    lease: float | None = None  # a REENCODE step's: when the join it works for started


class Delivery(Protocol):
    """A join request taken from the queue; it comes back unless acknowledged."""

    request: JoinRequest

    def acknowledge(self) -> None: ...


class JobQueue(Protocol):
    def schedule_join(self, video_id: int, delay_seconds: int = 0, urgent: bool = False) -> None:
        """Ask for a join, delivered after delay_seconds (at most 900)."""

    def schedule_rendition(self, video_id: int, delay_seconds: int = 0) -> None:
        """Ask for the video's MP4 rendition (a message of kind RENDITION on the same queue)."""

    def schedule_steps(self, requests: list[JoinRequest]) -> None:
        """Queue steps (RENDITION_STEPS, REENCODE_STEPS requests), due now: each its own
        message, so that each runs in its own invocation, all at once."""

    def receive(self, wait_seconds: int = 0) -> Delivery | None:
        """The next request that is due, or None. (The SQS trigger does this on AWS; the
        local worker and the tests call it.)"""

    def waiting(self) -> tuple[int, int]:
        """How many requests are (due now, still delayed)."""

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        """A message being handled that failed comes back in `seconds`, rather than when its
        visibility timeout (six times the join's) runs out."""


@dataclass(frozen=True)
class Backend:
    """The three ports together, as `chalicelib.wiring` builds them."""
    catalog: Catalog
    store: ObjectStore
    queue: JobQueue
