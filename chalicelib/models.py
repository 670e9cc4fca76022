"""The domain: a video's record, its status rules, what a join made of it, and how a join
ended. Plain data with no storage or HTTP in it; the catalog adapters read and write it,
the use cases decide with it, `chalicelib.responses` shapes it into JSON."""
import dataclasses
import enum
from dataclasses import dataclass


class Status(str, enum.Enum):
    EMPTY = "empty"  # no chunk stored yet
    RECORDING = "recording"  # chunks stored, no join pending
    PROCESSING = "processing"  # a join is queued or running
    READY = "ready"  # the compiled object reflects every chunk
    FAILED = "failed"  # the chunks as they are do not make a playable video


class JoinMethod(str, enum.Enum):
    SEGMENTS = "segments"  # one stream, composed by S3 from segments folded while recording
    REMUX = "remux"  # one stream, stream-copied by ffmpeg into a seekable file
    CONCAT = "concat"  # complete files with the same streams, joined by stream copy
    REENCODE = "reencode"  # complete files that differ, re-encoded into one format


class JoinOutcome(str, enum.Enum):
    """What one run of the join job did (for the log and the tests)."""
    NO_SUCH_VIDEO = "no such video"
    UP_TO_DATE = "up to date"
    ALREADY_BEING_JOINED = "already being joined"
    WAITING_FOR_PAUSE = "waiting for the recording to pause"
    WAITING_FOR_CHUNK = "waiting for a chunk"
    FAILED = "failed"
    JOINED = "joined"
    SUPERSEDED = "superseded by a newer join"
    HANDED_OFF = "handed to its re-encode steps"


@dataclass(frozen=True)
class MediaSummary:
    """What the compiled object is: recorded with the join, reported in the status."""
    container: str
    content_type: str
    duration: float | None
    byte_size: int
    join_method: JoinMethod
    audio_only: bool
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    audio_codec: str | None = None

    def as_dict(self) -> dict:
        """The fields that are known, as plain JSON values."""
        return _plain(self)

    @classmethod
    def from_dict(cls, fields: dict) -> "MediaSummary":
        return _from_plain(cls, fields, join_method=JoinMethod)


def _plain(record) -> dict:
    """A dataclass record's known fields (None left out) as plain JSON values: an enum
    field as its value."""
    return {name: value.value if isinstance(value, enum.Enum) else value
            for name, value in dataclasses.asdict(record).items() if value is not None}


def _from_plain(cls, fields: dict, **enums: type[enum.Enum]):
    """The record of class `cls` from _plain's dict (fields it does not know are ignored:
    written by a newer version); `enums`: the enum type of each enum field."""
    known = {f.name for f in dataclasses.fields(cls)}
    values = {name: value for name, value in fields.items() if name in known}
    for name, kind in enums.items():
        values[name] = kind(values[name])
    return cls(**values)


class RenditionState(str, enum.Enum):
    """Where the H.264/AAC MP4 rendition of one compiled object is (chalicelib.renditions)."""
    PENDING = "pending"  # asked for (or being made: its job renews requested_at)
    READY = "ready"  # made, at `key`
    FAILED = "failed"  # could not be made; `error` says why
    TOO_LONG = "too_long"  # longer than RENDITION_MAX_SECONDS: not made


@dataclass(frozen=True)
class Rendition:
    """The MP4 rendition of the compiled object of `chunks` chunks, and its state."""
    chunks: int  # the compiled chunk count it is (to be) made from
    state: RenditionState
    key: str | None = None  # set when ready
    byte_size: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    error: str | None = None  # failed, too_long
    requested_at: float | None = None  # pending: asked for, or the running job's heartbeat

    def as_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, fields: dict) -> "Rendition":
        return _from_plain(cls, fields, state=RenditionState)


@dataclass(frozen=True)
class Video:
    """One video's record. Changed only through the catalog's conditional writes."""
    video_id: int
    token_hash: str  # of the upload token: append, finalize, delete; never in a URL
    chunk_count: int  # chunk indices claimed so far: the next append gets this index
    byte_count: int
    created_at: float
    updated_at: float
    lost_chunks: frozenset = frozenset()  # indices whose upload failed after being claimed
    join_requested_at: float | None = None  # a join was asked for by an append
    join_urgent_at: float | None = None  # a join was asked for by someone waiting to play
    join_started_at: float | None = None
    join_alive_at: float | None = None  # the running join's last heartbeat (its lease)
    joining_chunks: int | None = None  # the chunk count the running join is joining
    join_attempt: int = 0  # how many joins of joining_chunks started without ending
    compiled_chunks: int | None = None  # the chunk count the compiled object reflects
    compiled_key: str | None = None
    poster_key: str | None = None
    media: MediaSummary | None = None  # set with compiled_key
    failed_chunks: int | None = None  # the chunk count whose join failed
    error: str | None = None
    segment_count: int = 0  # segments folded from the chunks so far (chalicelib.media.fold)
    segmented_bytes: int = 0  # chunk bytes those segments (and the stream's head) hold
    segments_off: str | None = None  # why this video cannot be folded, when it cannot
    # The last chunk claimed, to know its retry: the same bytes again are not a new chunk.
    last_chunk_size: int | None = None
    last_chunk_digest: str | None = None  # SHA-256, hex
    finalized_at: float | None = None  # no more appends; joined at once
    playback_token_hash: str | None = None  # of the read-only token a player URL carries
    # The MP4 rendition (chalicelib.renditions); only the one of compiled_chunks counts.
    rendition: Rendition | None = None

    @property
    def committed_bytes(self) -> int:
        """Where the next chunk starts in the recording's byte stream."""
        return self.byte_count

    def is_retry_of_last_chunk(self, size: int, digest: str, first: int | None) -> bool:
        """The chunk claimed last, sent again (at the same offset, when one is given)."""
        return (self.chunk_count > 0 and (self.last_chunk_size, self.last_chunk_digest) == (size, digest)
                and (first is None or first == self.byte_count - size))

    def stored_chunk_indices(self) -> list[int]:
        return [i for i in range(self.chunk_count) if i not in self.lost_chunks]

    def needs_join(self) -> bool:
        """Chunks are stored that no compiled object or failure accounts for."""
        return (self.chunk_count not in (self.compiled_chunks, self.failed_chunks)
                and bool(self.stored_chunk_indices()))

    def next_join_attempt(self) -> int:
        """A join that vanished (its worker killed, out of time or memory) leaves
        joining_chunks behind; one that ended, in success or failure, clears it."""
        return self.join_attempt + 1 if self.joining_chunks == self.chunk_count else 1

    def join_running(self, now: float, stall_seconds: int) -> bool:
        """A join holds a lease: it started, and its heartbeat is younger than stall_seconds
        (a join whose worker died stops beating and is presumed lost)."""
        alive = self.join_alive_at or self.join_started_at
        return alive is not None and now - alive < stall_seconds

    def joining_now(self, now: float, stall_seconds: int) -> bool:
        """A join of exactly the chunks stored now is running (and not presumed lost)."""
        return self.join_running(now, stall_seconds) and self.joining_chunks == self.chunk_count

    def join_pending(self, now: float, stall_seconds: int, delay_seconds: int = 0) -> bool:
        """A join is running, or was asked for recently enough that it must still come: a
        waiting join renews its request every delay_seconds while the recording goes on."""
        requests = [t for t in (self.join_requested_at, self.join_urgent_at) if t is not None]
        return (self.join_running(now, stall_seconds)
                or any(now - t < delay_seconds + stall_seconds for t in requests))

    def status(self, now: float, stall_seconds: int, delay_seconds: int = 0) -> Status:
        if not self.stored_chunk_indices():
            return Status.EMPTY
        if self.compiled_chunks == self.chunk_count:
            return Status.READY
        if self.failed_chunks == self.chunk_count:
            return Status.FAILED
        if self.join_pending(now, stall_seconds, delay_seconds):
            return Status.PROCESSING
        return Status.RECORDING

    def current_rendition(self) -> Rendition | None:
        """The rendition of the compiled object as it is now (None for an older one)."""
        if self.rendition is not None and self.compiled_chunks is not None \
                and self.rendition.chunks == self.compiled_chunks:
            return self.rendition
        return None

    def with_segments_of(self, newer: "Video") -> "Video":
        """This record (a join's view of its chunks) with the fold progress of a newer read."""
        return dataclasses.replace(self, segment_count=newer.segment_count,
                                   segmented_bytes=newer.segmented_bytes,
                                   segments_off=newer.segments_off)
