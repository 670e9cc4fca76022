"""Segments: a recording folded, while it goes on, into S3 objects a join can copy.

A join that reads every chunk moves the whole video through the job after the last append,
and reading hundreds of small objects is slow. So while chunks keep arriving, the join job
(each time it is woken and finds the recording still going) folds the chunks stored so far
into segments: objects of at least 5 MiB (S3's smallest multipart part) that start and end
at a Cluster, noting on the way where every keyframe is and where the frames end. When the
video is wanted, the join writes a new head (Duration, Cues) and has S3 assemble the compiled
object from that head, the segments (UploadPartCopy: their bytes never pass through the job)
and the chunks not folded yet. Each byte is read and written once, off the critical path.

This covers one WebM/Matroska stream, which is what MediaRecorder sends. A video that cannot
be folded (MP4, several files, a lost chunk, a structure chalicelib.matroska does not expect)
is marked so in the catalog and joined by ffmpeg from its chunks (chalicelib.media), which
also gives it a precise error when it is not playable.

State: the catalog counts the committed segments, and a commit is conditional on the count
before it, so two jobs folding at once cannot both commit; the JSON object written beside
segment n holds everything needed to go on from there. The chunks stay: they are the record
of what was appended, and a segment is only ever derived from them.
"""
import bisect
import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from chalicelib import containers, storage
from chalicelib.catalog import Catalog, ConditionFailed, Video
from chalicelib.errors import NotPlayable
from chalicelib.matroska import Head, Incomplete, Index, Unsupported, read_head, scan_clusters, write_head
from chalicelib.media import FULL_DECODE_SECONDS, SAMPLE_SECONDS, Ffmpeg, JoinedVideo, MediaInfo
from chalicelib.storage import PREFETCH, ChunkMissing, Composition, ObjectStore, prefetch_in_order

logger = Logger(child=True)

SEGMENT_BYTES = 5 * 1024 * 1024
# A fold holds at most about this many chunk bytes at once: the job's memory bound.
FOLD_READ_BYTES = 4 * SEGMENT_BYTES
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

    def as_json(self) -> str:
        return json.dumps({"head": self.head, "sizes": self.sizes, "chunk": self.chunk,
                           "offset": self.offset, "index": self.index.as_json()})

    @classmethod
    def from_json(cls, text: bytes) -> "FoldState":
        data = json.loads(text)
        return cls(data["head"], data["sizes"], data["chunk"], data["offset"],
                   Index.from_json(data["index"]))


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


@dataclass(frozen=True)
class Assembly:
    """A compiled object being composed from the head, the segments and the rest, and the
    files that check it."""
    video: JoinedVideo  # its path: the new head and the first segment (probe, poster)
    composition: Composition  # its parts on their way; complete() publishes the object
    byte_size: int
    tail_path: str  # a head and the clusters from a keyframe before the last seconds
    tail_is_whole: bool  # ...which for a short video is all of it


class Segments:
    def __init__(self, catalog: Catalog, store: ObjectStore, ffmpeg: Ffmpeg):
        self.catalog = catalog
        self.store = store
        self.ffmpeg = ffmpeg

    # --- folding while the recording goes on -------------------------------------------

    def fold(self, video: Video) -> None:
        """Fold what has arrived into segments, if a segment's worth has."""
        if video.segments_off is None and video.byte_count - video.segmented_bytes >= SEGMENT_BYTES:
            self._fold(video, final=False)

    def _fold(self, video: Video, final: bool,
              state: FoldState | None = None) -> tuple[FoldState, Head, bytes] | None:
        """Commit every segment the stored chunks make, going on from `state` (read from
        S3 when not given). Returns the state, the head and the bytes after the last
        segment (final only: when a join needs them), or None when the video cannot be
        folded. A final fold reads up to the join's chunk count and raises ChunkMissing for
        a chunk still in flight; one while recording stops before it."""
        if video.segments_off is not None:
            return None
        state = state or self._state(video)
        while True:
            lost = sorted(i for i in video.lost_chunks if i >= state.chunk)
            if lost:
                return self._stop(video, f"chunk {lost[0]} was lost")
            try:
                read = self._read(video, state, final)
            except _SeveralFiles as second:
                return self._stop(video, f"chunk {second.index} starts another file")
            try:
                head = Head.decoded(state.head) if state.head else read_head(read.data)
                start = 0 if state.head else head.size
                scan = scan_clusters(memoryview(read.data)[start:], state.cluster_bytes,
                                     head, state.index)
            except Incomplete:
                return None  # no cluster yet
            except Unsupported as why:
                return self._stop(video, str(why))
            cut = 0
            for boundary, mark in scan.boundaries:
                if boundary - cut < SEGMENT_BYTES:
                    continue
                chunk, offset = read.chunk_at(start + boundary)
                after = FoldState(head.encoded(), state.sizes + [boundary - cut], chunk, offset,
                                  scan.index.at(mark))
                if not self._commit(video, bytes(read.data[start + cut:start + boundary]), after, head):
                    if not final:
                        return None
                    # Another job went ahead: go on from what it committed, still only up
                    # to the chunks this join is for.
                    now = self.catalog.get(video.video_id)
                    return self._fold(dataclasses.replace(
                        video, segment_count=now.segment_count,
                        segmented_bytes=now.segmented_bytes, segments_off=now.segments_off), final)
                state, cut = after, boundary
            if read.exhausted:
                return state, head, bytes(read.data[start + cut:])
            if cut == 0:
                return self._stop(video, f"a cluster is larger than {FOLD_READ_BYTES} bytes")

    def _state(self, video: Video) -> FoldState:
        if not video.segment_count:
            return FoldState()
        key = storage.segment_state_key(video.video_id, video.segment_count)
        return FoldState.from_json(self.store.get_object(key))

    def _read(self, video: Video, state: FoldState, final: bool) -> _Read:
        read = _Read(bytearray(), [], [], exhausted=True)
        indices = list(range(state.chunk, video.chunk_count))
        # A join waits for its fold; a fold while recording waits for nothing, and reading
        # fewer chunks at once keeps it out of the way of the appends.
        window = PREFETCH if final else BACKGROUND_PREFETCH
        chunks = prefetch_in_order(indices, lambda i: self.store.read_chunk(video.video_id, i),
                                   window)
        try:
            self._take(read, chunks, indices, state, final)
        finally:
            chunks.close()  # stop fetching ahead
        return read

    @staticmethod
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
            offset = state.offset if index == state.chunk else 0
            read.starts.append(len(read.data))
            read.chunks.append((index, offset))
            read.data += memoryview(chunk)[offset:]

    def _commit(self, video: Video, segment: bytes, state: FoldState, head: Head) -> bool:
        number = len(state.sizes)
        self.store.put_object(storage.segment_key(video.video_id, number - 1), segment)
        self.store.put_object(storage.segment_state_key(video.video_id, number),
                              state.as_json().encode(), "application/json")
        try:
            self.catalog.commit_segment(video.video_id, number, head.size + state.cluster_bytes)
        except ConditionFailed:
            return False
        return True

    def _stop(self, video: Video, reason: str) -> None:
        logger.info("not folding", extra={"video_id": video.video_id, "reason": reason})
        self.catalog.stop_segments(video.video_id, reason)
        return None

    # --- assembling the compiled object -------------------------------------------------

    def assemble(self, video: Video, work_dir: str) -> Assembly | None:
        """Fold the rest and compose the compiled object; None when the video is to be
        joined from its chunks instead (it cannot be folded, or holds less than a segment).

        S3 starts copying the segments folded already while the rest is folded: the part
        numbers are known (part 1 is the new head with segment 0, part n + 1 segment n).
        """
        if video.segments_off is not None:
            return None
        with contextlib.ExitStack() as on_failure:
            composition, copied, early = None, 1, None
            if video.segment_count:
                early = self._state(video)
                composition = self._compose(video, Head.decoded(early.head))
                on_failure.callback(composition.abort)
                copied = self._copy(composition, video, copied, len(early.sizes))
            folded = self._fold(video, final=True, state=early)
            if folded is None or not folded[0].sizes:
                return None
            state, head, rest = folded
            try:
                scan = scan_clusters(rest, state.cluster_bytes, head, state.index)
            except Unsupported as why:
                return self._stop(video, str(why))
            if not scan.index.cues:
                return None  # nowhere to seek to: leave it to ffmpeg
            if composition is None:
                composition = self._compose(video, head)
                on_failure.callback(composition.abort)
            self._copy(composition, video, copied, len(state.sizes))
            rest, index = scan.whole(rest), scan.index
            first = write_head(head, index.end, index.cues) + self.store.get_object(
                storage.segment_key(video.video_id, 0))
            composition.send(1, first)
            if rest:
                composition.send(len(state.sizes) + 1, rest)
            container = containers.sniff(head.raw)
            head_path = os.path.join(work_dir, f"head.{container.extension}")
            with open(head_path, "wb") as out:
                out.write(first)
            duration = head.seconds(index.end)
            info = self.ffmpeg.probe(head_path)
            if not info.streams:
                raise NotPlayable("the recording holds no complete audio or video frame")
            tail_path = os.path.join(work_dir, f"tail.{container.extension}")
            whole = duration <= FULL_DECODE_SECONDS
            self._write_tail(video, state, head, index, rest, tail_path,
                             from_ticks=0 if whole else head.ticks(duration - SAMPLE_SECONDS))
            on_failure.pop_all()
            return Assembly(
                video=JoinedVideo(path=head_path, container=container,
                                  info=MediaInfo(duration, info.streams), files=1, method="segments"),
                composition=composition,
                byte_size=len(first) + sum(state.sizes[1:]) + len(rest),
                tail_path=tail_path, tail_is_whole=whole)

    def check(self, assembly: Assembly) -> None:
        """Decode the video's start and its last seconds (all of it when short)."""
        if not assembly.tail_is_whole:
            self.ffmpeg.decode(assembly.video.path, t=SAMPLE_SECONDS)
        self.ffmpeg.decode(assembly.tail_path)

    def _compose(self, video: Video, head: Head) -> Composition:
        container = containers.sniff(head.raw)
        content_type = container.content_type
        if not head.has_video:
            content_type = content_type.replace("video/", "audio/")
        key = storage.compiled_key(video.video_id, video.chunk_count, container.extension)
        return self.store.start_composition(key, content_type)

    @staticmethod
    def _copy(composition: Composition, video: Video, copied: int, count: int) -> int:
        """Have S3 copy segments copied..count-1 into their parts; returns count."""
        for number in range(copied, count):
            composition.copy(number + 1, storage.segment_key(video.video_id, number))
        return max(copied, count)

    def _write_tail(self, video: Video, state: FoldState, head: Head, index: Index,
                    rest: bytes, path: str, from_ticks: int) -> None:
        """A file of a head and the clusters from the last keyframe at or before from_ticks
        to the end, for a decode check of the video's last seconds."""
        start = max((at for time, at in index.cues if time <= from_ticks), default=0)
        with open(path, "wb") as out:
            out.write(write_head(head, index.end, cues=None))
            segment_start = 0
            for number, size in enumerate(state.sizes):
                if start < segment_start + size:
                    out.write(self.store.get_object(storage.segment_key(video.video_id, number),
                                                    first_byte=max(0, start - segment_start)))
                segment_start += size
            out.write(rest[max(0, start - segment_start):])



class _SeveralFiles(Exception):
    def __init__(self, index: int):
        super().__init__(index)
        self.index = index
