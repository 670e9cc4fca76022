"""Folding: a WebM/Matroska recording turned, while it goes on, into segments a join can copy.

A join that reads every chunk moves the whole video through the job after the last append,
and reading hundreds of small objects is slow. So while chunks keep arriving, the join job
(each time it wakes and finds the recording still going) folds the chunks stored so far into
segments: objects of at least 5 MiB (S3's smallest multipart part) that start and end at a
Cluster, noting on the way where every keyframe is and where the frames end
(chalicelib.media.matroska). The segment join (chalicelib.media.segment_join) then has S3
compose the compiled object from them. Each byte is read and written once, off the
critical path.

State: the catalog counts the committed segments, and a commit is conditional on the count
before it, so two jobs folding at once cannot both commit; the state object written beside
segment n holds everything needed to go on from there. The chunks stay: they are the record
of what was appended, and a segment is only ever derived from them.

A video that cannot be folded (MP4, several files, a lost chunk, a structure the reader
does not expect) is marked so in the catalog, with the reason, and joined from its chunks.
"""
import bisect
import json
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from chalicelib import prefetch
from chalicelib.errors import ChunkMissing, ConditionFailed, FoldSuperseded
from chalicelib.media import containers
from chalicelib.media.matroska import Head, Incomplete, Index, Unsupported, read_head, scan_clusters
from chalicelib.models import Video
from chalicelib.ports import Catalog, ObjectStore

logger = Logger(child=True)

SEGMENT_BYTES = 5 * 1024 * 1024
# A fold holds at most about this many chunk bytes at once: the job's memory bound.
FOLD_READ_BYTES = 4 * SEGMENT_BYTES
# A fold while recording reads few chunks at once, to stay out of the appends' way.
BACKGROUND_PREFETCH = 2


@dataclass
class FoldState:
    """Where folding stands after the committed segments."""
    head: str | None = None  # the stream's head (base64), once the chunks reached a Cluster
    sizes: list[int] = field(default_factory=list)  # each committed segment's length
    chunk: int = 0  # the chunk where the next segment starts...
    offset: int = 0  # ...and the byte within it
    index: Index = field(default_factory=Index)  # keyframes and times up to there

    @property
    def cluster_bytes(self) -> int:
        return sum(self.sizes)

    def as_json(self) -> bytes:
        return json.dumps({"head": self.head, "sizes": self.sizes, "chunk": self.chunk,
                           "offset": self.offset, "index": self.index.as_json()}).encode()

    @classmethod
    def from_json(cls, text: bytes) -> "FoldState":
        data = json.loads(text)
        return cls(data["head"], data["sizes"], data["chunk"], data["offset"],
                   Index.from_json(data["index"]))


@dataclass(frozen=True)
class Folded:
    """What a final fold leaves for the join: the state after the last segment, the
    stream's head, and the chunk bytes after the last segment."""
    state: FoldState
    head: Head
    rest: bytes


@dataclass
class _Read:
    """Chunk bytes from a fold's starting point, and which chunk each came from."""
    data: bytearray
    starts: list[int]  # position in data where each chunk's bytes begin
    chunks: list[tuple[int, int]]  # (chunk index, offset in it) at each of those positions
    exhausted: bool  # every stored chunk was read

    def chunk_at(self, position: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, position) - 1
        index, offset = self.chunks[i]
        return index, offset + position - self.starts[i]


class _SeveralFiles(Exception):
    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


class _TooLarge(_SeveralFiles):
    """A chunk larger than a fold holds (a piece PUT to S3): joined from the chunks."""


class Folder:
    def __init__(self, catalog: Catalog, store: ObjectStore):
        self.catalog = catalog
        self.store = store

    def fold(self, video: Video) -> None:
        """While recording: fold what has arrived into segments, if a segment's worth has.
        Stops quietly where another job got ahead or a chunk is still in flight."""
        if video.segments_off is None and video.byte_count - video.segmented_bytes >= SEGMENT_BYTES:
            try:
                self._fold(video, final=False, state=self.state(video))
            except FoldSuperseded:
                pass

    def fold_final(self, video: Video, state: FoldState) -> Folded | None:
        """For a join: fold every chunk it joins, going on from `state`. None when the video
        cannot be folded. ChunkMissing for a chunk still in flight; FoldSuperseded when
        another job committed a segment first."""
        return self._fold(video, final=True, state=state)

    def state(self, video: Video) -> FoldState:
        """The state after the video's committed segments."""
        if not video.segment_count:
            return FoldState()
        return FoldState.from_json(self.store.read_fold_state(video.video_id, video.segment_count))

    def stop(self, video: Video, reason: str) -> None:
        logger.info("not folding", extra={"video_id": video.video_id, "reason": reason})
        self.catalog.stop_segments(video.video_id, reason)

    def _fold(self, video: Video, final: bool, state: FoldState) -> Folded | None:
        if video.segments_off is not None:
            return None
        while True:
            lost = sorted(i for i in video.lost_chunks if i >= state.chunk)
            if lost:
                return self.stop(video, f"chunk {lost[0]} was lost")
            try:
                read = self._read(video, state, final)
            except _TooLarge as large:
                return self.stop(video, f"chunk {large.index} is larger than {FOLD_READ_BYTES} bytes")
            except _SeveralFiles as second:
                return self.stop(video, f"chunk {second.index} starts another file")
            try:
                head = Head.decoded(state.head) if state.head else read_head(read.data)
                start = 0 if state.head else head.size
                scan = scan_clusters(memoryview(read.data)[start:], state.cluster_bytes,
                                     head, state.index)
            except Incomplete:
                return None  # no cluster yet
            except Unsupported as why:
                return self.stop(video, str(why))
            cut = 0
            for boundary, mark in scan.boundaries:
                if boundary - cut < SEGMENT_BYTES:
                    continue
                chunk, offset = read.chunk_at(start + boundary)
                after = FoldState(head.encoded(), state.sizes + [boundary - cut], chunk, offset,
                                  scan.index.at(mark))
                self._commit(video, bytes(read.data[start + cut:start + boundary]), after, head)
                state, cut = after, boundary
            if read.exhausted:
                return Folded(state, head, bytes(read.data[start + cut:]))
            if cut == 0:
                return self.stop(video, f"a cluster is larger than {FOLD_READ_BYTES} bytes")

    def _read(self, video: Video, state: FoldState, final: bool) -> _Read:
        read = _Read(bytearray(), [], [], exhausted=True)
        indices = list(range(state.chunk, video.chunk_count))
        window = prefetch.PREFETCH if final else BACKGROUND_PREFETCH
        # One byte more than a fold holds: a chunk that large is not folded (and not read whole).
        chunks = prefetch.prefetch_in_order(
            indices, lambda i: self.store.read_chunk(video.video_id, i, max_bytes=FOLD_READ_BYTES + 1),
            window)
        try:
            _take(read, chunks, indices, state, final)
        finally:
            chunks.close()  # stop fetching ahead
        return read

    def _commit(self, video: Video, segment: bytes, state: FoldState, head: Head) -> None:
        number = len(state.sizes)
        self.store.put_segment(video.video_id, number - 1, segment)
        self.store.put_fold_state(video.video_id, number, state.as_json())
        try:
            self.catalog.commit_segment(video.video_id, number, head.size + state.cluster_bytes)
        except ConditionFailed:
            # Another job committed this segment first, or found the video unfoldable. The
            # bytes it wrote are the same: a fold is deterministic for the same chunks.
            raise FoldSuperseded(video.video_id) from None


def _take(read: _Read, chunks, indices: list[int], state: FoldState, final: bool) -> None:
    for index in indices:
        if len(read.data) >= FOLD_READ_BYTES:
            read.exhausted = False
            break
        try:
            chunk = next(chunks)
        except ChunkMissing:
            if final:
                raise
            break  # its append is in flight: fold up to it
        if index > 0 and containers.sniff(chunk[:containers.SNIFF_BYTES]) is not None:
            raise _SeveralFiles(index)
        if len(chunk) > FOLD_READ_BYTES:
            raise _TooLarge(index)
        offset = state.offset if index == state.chunk else 0
        read.starts.append(len(read.data))
        read.chunks.append((index, offset))
        read.data += memoryview(chunk)[offset:]
