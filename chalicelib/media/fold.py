"""Folding: a live-written recording turned, while it goes on, into segments a join can copy.

A join that reads every chunk moves the whole video through the job after the last append,
and reading hundreds of small objects is slow. So while chunks keep arriving, the join job
(each time it wakes and finds the recording still going) folds the chunks stored so far into
segments: objects of at least 5 MiB (S3's smallest multipart part) that start and end at a
piece of the stream (a WebM Cluster, an MP4 fragment), noting on the way where every
keyframe is and where the frames end (chalicelib.media.live_formats). The segment join (chalicelib.media.segment_join) then has S3
compose the compiled object from them. Each byte is read and written once, off the
critical path.

State: the catalog counts the committed segments, and a commit is conditional on the count
before it, so two jobs folding at once cannot both commit; the state object written beside
segment n holds everything needed to go on from there. The chunks stay: they are the record
of what was appended, and a segment is only ever derived from them.

A video that cannot be folded (several files, a lost chunk, a structure the reader does not
expect, an MP4 that is not fragmented) is marked so in the catalog, with the reason, and joined from its chunks.
"""
import base64
import bisect
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from aws_lambda_powertools import Logger

from chalicelib import prefetch
from chalicelib.errors import (
    ChunkMissing,
    ConditionFailed,
    FoldSuperseded,
    StorageUnavailable,
    UploadGone,
)
from chalicelib.media import containers, live_formats
from chalicelib.media.ebml import Incomplete, Unsupported
from chalicelib.models import Video
from chalicelib.ports import Catalog, ObjectStore

logger = Logger(child=True)

SEGMENT_BYTES = 5 * 1024 * 1024
# While recording, the last segment (unless it is segment 0) is extended with the pieces
# that came after it once this many bytes have: see Folder.fold.
EXTEND_BYTES = 512 * 1024
# A fold holds at most about this many chunk bytes at once: the job's memory bound.
FOLD_READ_BYTES = 4 * SEGMENT_BYTES
# A fold while recording reads few chunks at once, to stay out of the appends' way.
BACKGROUND_PREFETCH = 2


@dataclass
class FoldState:
    """Where folding stands after the committed segments."""
    head: str | None = None  # the stream's head (base64), once the chunks reached a piece
    sizes: list[int] = field(default_factory=list)  # each committed segment's length
    chunk: int = 0  # the chunk where the next segment starts...
    offset: int = 0  # ...and the byte within it
    index: Any = None  # the format's Index: keyframes and times up to there, once there is a head
    # When the last size is that of the last segment's extension (Extension), where it ends.
    extended_to: int | None = None
    # The draft: an open multipart upload at the key a join will publish, that holds the
    # segments after the first as its parts 2, 3... ({"key", "upload_id"}; see _commit).
    draft: dict | None = None

    @property
    def body_bytes(self) -> int:
        """The bytes after the head that the segments hold."""
        return sum(self.sizes)

    @property
    def format(self) -> live_formats.LiveFormat | None:
        return live_formats.of_stream(base64.b64decode(self.head)) if self.head else None

    def as_json(self) -> bytes:
        return json.dumps({"head": self.head, "sizes": self.sizes, "chunk": self.chunk,
                           "offset": self.offset,
                           "index": self.index.as_json() if self.index else None,
                           "draft": self.draft}).encode()

    @classmethod
    def from_json(cls, text: bytes) -> "FoldState":
        data = json.loads(text)
        state = cls(data["head"], data["sizes"], data["chunk"], data["offset"],
                    draft=data.get("draft"))
        if data["index"] is not None:
            state.index = state.format.index_from_json(data["index"])
        return state


@dataclass(frozen=True)
class Extension:
    """The last segment extended with the whole pieces that came after it, stored beside it
    while the recording goes on. It is never committed: a segment after it still starts
    where the last segment ends. A join uses it in the last segment's place, so that only
    the pieces after it pass through the join."""
    extended_to: int  # where it ends, in bytes after the head
    size: int  # its length (the segment's and the pieces')
    chunk: int  # the chunk where the bytes after it start...
    offset: int  # ...and the byte within it
    index: Any  # the format's Index up to its end

    def as_json(self) -> bytes:
        return json.dumps({"extended_to": self.extended_to, "size": self.size, "chunk": self.chunk,
                           "offset": self.offset, "index": self.index.as_json()}).encode()

    @classmethod
    def from_json(cls, text: bytes, stream: live_formats.LiveFormat) -> "Extension":
        data = json.loads(text)
        return cls(data["extended_to"], data["size"], data["chunk"], data["offset"],
                   stream.index_from_json(data["index"]))


@dataclass(frozen=True)
class Folded:
    """What a final fold leaves for the join: the state after the last segment, the
    stream's format and head, and the chunk bytes after the last segment."""
    state: FoldState
    format: live_formats.LiveFormat
    head: Any
    rest: bytes
    chunk_at: Callable[[int], tuple[int, int]]  # a position in rest -> (chunk, offset in it)


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
        """While recording: fold what has arrived into segments, if a segment's worth has,
        and extend the last segment with what came after it. Stops quietly where another job
        got ahead or a chunk is still in flight.

        The extension is what keeps the join after the last append small: without it, the
        join reads and sends everything after the last segment, up to 5 MiB; with it, only
        what came since the last time the recording paused long enough for a waiting join
        (JOIN_DELAY_SECONDS). Segment 0 is not extended: it is read back for the head's
        part whatever its length."""
        unfolded = video.byte_count - video.segmented_bytes
        extends = video.segment_count >= 2 and unfolded >= EXTEND_BYTES
        if video.segments_off is not None or (unfolded < SEGMENT_BYTES and not extends):
            return
        try:
            folded = self._fold(video, final=False, state=self.state(video))
            if folded is not None and len(folded.state.sizes) >= 2:
                self._extend(video, folded)
        except FoldSuperseded:
            pass

    def fold_final(self, video: Video, state: FoldState) -> Folded | None:
        """For a join: fold every chunk it joins, going on from `state`. None when the video
        cannot be folded. ChunkMissing for a chunk still in flight; FoldSuperseded when
        another job committed a segment first. A state that ends in an extension commits
        no segment (one would start where the extension ends, not the segment)."""
        return self._fold(video, final=True, state=state)

    def extended(self, video: Video, state: FoldState) -> FoldState:
        """`state` with its last segment replaced by that segment's extension, when there is
        one and less than a segment's worth came after it (a join then reads only that)."""
        if len(state.sizes) < 2:
            return state
        extension = self._extension(video, len(state.sizes), state.format)
        if extension is None:
            return state
        head_size = len(base64.b64decode(state.head))
        if video.byte_count - (head_size + extension.extended_to) >= SEGMENT_BYTES:
            return state  # too old to be worth it
        return FoldState(state.head, state.sizes[:-1] + [extension.size], extension.chunk,
                         extension.offset, extension.index, extension.extended_to, state.draft)

    def _extension(self, video: Video, segment_count: int,
                   stream: live_formats.LiveFormat) -> Extension | None:
        """The extension of the last of segment_count segments, if it was ever extended."""
        stored = self.store.read_extension(video.video_id, segment_count)
        return None if stored is None else Extension.from_json(stored, stream)

    def _extend(self, video: Video, folded: Folded) -> None:
        state = folded.state
        try:
            scan = folded.format.scan(folded.rest, state.body_bytes, folded.head, state.index)
        except Unsupported:
            return  # the join will meet it, and say why
        # Up to the last piece that starts in what was read: that piece may be cut short.
        end, mark = scan.boundaries[-1] if scan.boundaries else (0, None)
        if end == 0:
            return
        count, last = len(state.sizes), len(state.sizes) - 1
        previous = self._extension(video, count, folded.format)
        extended_to = state.body_bytes + end
        if previous is not None and previous.extended_to >= extended_to:
            return
        self.store.extend_segment(video.video_id, last, state.sizes[-1], extended_to,
                                  folded.rest[:end])
        chunk, offset = folded.chunk_at(end)
        self.store.put_extension(video.video_id, count, Extension(
            extended_to, state.sizes[-1] + end, chunk, offset, scan.index.at(mark)).as_json())
        # What it replaces: the previous extension of this segment, or the last one of the
        # segment before (a segment was committed since). A join still copying it fails and
        # is retried: it never copies a wrong object.
        if previous is None and last >= 2:
            older = self._extension(video, count - 1, folded.format)
            if older is not None:
                self.store.delete_extended_segment(video.video_id, last - 1, older.extended_to)
        elif previous is not None:
            self.store.delete_extended_segment(video.video_id, last, previous.extended_to)

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
            stream = state.format or live_formats.of_stream(read.data)
            if stream is None:
                if len(read.data) < containers.SNIFF_BYTES:
                    return None  # too few bytes to tell yet
                return self.stop(video, "the recording is neither WebM/Matroska nor MP4")
            try:
                head = stream.decoded_head(state.head) if state.head else stream.read_head(read.data)
                start = 0 if state.head else head.size
                scan = stream.scan(memoryview(read.data)[start:], state.body_bytes, head,
                                   state.index or stream.new_index())
            except Incomplete:
                return None  # no piece yet
            except Unsupported as why:
                return self.stop(video, str(why))
            cut = 0
            for boundary, mark in scan.boundaries:
                if boundary - cut < SEGMENT_BYTES or state.extended_to is not None:
                    continue
                chunk, offset = read.chunk_at(start + boundary)
                after = FoldState(head.encoded(), state.sizes + [boundary - cut], chunk, offset,
                                  scan.index.at(mark), draft=state.draft)
                self._commit(video, bytes(read.data[start + cut:start + boundary]), after, head,
                             drafting=not final)
                state, cut = after, boundary
            if read.exhausted:
                return Folded(state, stream, head, bytes(read.data[start + cut:]),
                              lambda position, at=start + cut: read.chunk_at(at + position))
            if cut == 0:
                return self.stop(video, f"a cluster or fragment is larger than {FOLD_READ_BYTES} bytes")

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

    def _commit(self, video: Video, segment: bytes, state: FoldState, head,
                drafting: bool) -> None:
        number = len(state.sizes)
        self.store.put_segment(video.video_id, number - 1, segment)
        if drafting and number >= 2:
            state.draft = self._draft(video, state, head)
        self.store.put_fold_state(video.video_id, number, state.as_json())
        try:
            self.catalog.commit_segment(video.video_id, number, head.size + state.body_bytes)
        except ConditionFailed:
            # Another job committed this segment first, or found the video unfoldable. The
            # bytes it wrote are the same: a fold is deterministic for the same chunks.
            raise FoldSuperseded(video.video_id) from None


    def _draft(self, video: Video, state: FoldState, head) -> dict | None:
        """While recording: copy the segment just folded into the draft, the multipart
        upload the join will complete (chalicelib.media.segment_join), so that the copies
        of a long recording's segments are made before it ends, not after. A draft that is
        no more (a join completed or aborted it) is replaced by one holding every segment
        after the first. Returns the draft; None when S3 failed (the join copies then)."""
        last = len(state.sizes) - 1
        try:
            if state.draft is not None:
                draft = self.store.resume_composition(state.draft["key"], state.draft["upload_id"],
                                                      list_parts=True)
                try:
                    if draft is not None:
                        draft.copy_segment(last + 1, video.video_id, last, state.sizes[last])
                        draft.wait()
                        return state.draft
                except UploadGone:
                    pass  # completed by a join since it was listed
            container = containers.sniff(head.raw)
            draft = self.store.start_composition(
                self.store.draft_key(video.video_id, len(state.sizes), container.extension),
                container.content_type_for(head.has_video))
            for number in range(1, last + 1):
                draft.copy_segment(number + 1, video.video_id, number, state.sizes[number])
            draft.wait()
            return {"key": draft.key, "upload_id": draft.upload_id}
        except (StorageUnavailable, UploadGone):
            logger.warning("no draft", extra={"video_id": video.video_id})
            return None


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
