"""Matroska/WebM structure, read without touching the media.

A live-written stream (what MediaRecorder sends) is an EBML header, a Segment of unknown
size, Info without a Duration, Tracks, then Clusters of frames. To make it seekable it needs
only a new head (chalicelib.media.seekable_head): Info with a Duration and a Cues index that
points at the clusters. The clusters themselves can stay byte for byte as they are, which is
what lets a join assemble the video from S3 objects without reading them
(chalicelib.media.segment_join).

Reads element headers and the first bytes of each block (track, time, flags), nothing more.
Anything this reader does not expect raises Unsupported: the caller then joins the chunks
the way that copes with anything ffmpeg can read.
"""
import base64
from dataclasses import dataclass, field

from chalicelib.errors import NotPlayable
from chalicelib.media import ebml, verify
from chalicelib.media.ebml import UNKNOWN_SIZE, Damaged, Incomplete, Unsupported, element_at  # noqa: F401

EBML = 0x1A45DFA3
SEGMENT = 0x18538067
SEEK_HEAD = 0x114D9B74
SEEK = 0x4DBB
SEEK_ID = 0x53AB
SEEK_POSITION = 0x53AC
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
DURATION = 0x4489
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_TYPE = 0x83
DEFAULT_DURATION = 0x23E383
CUES = 0x1C53BB6B
CUE_POINT = 0xBB
CUE_TIME = 0xB3
CUE_TRACK_POSITIONS = 0xB7
CUE_TRACK = 0xF7
CUE_CLUSTER_POSITION = 0xF1
CLUSTER = 0x1F43B675
CLUSTER_TIMECODE = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
BLOCK_DURATION = 0x9B
REFERENCE_BLOCK = 0xFB
VOID = 0xEC
CRC32 = 0xBF

# Level-1 elements of the stream's head that the new head replaces or leaves out.
_REPLACED = {SEEK_HEAD, INFO, CUES, VOID, CRC32}
# Level-1 elements a finished file has after its clusters (Cues, Tags, Chapters,
# Attachments...): not a live stream, but no damage either.
_FINISHED_FILE = {CUES, 0x1254C367, 0x1043A770, 0x1941A469, SEEK_HEAD, INFO, TRACKS, EBML, SEGMENT}
# Cluster children that carry no frame (Position, PrevSize, Void, CRC-32, SilentTracks).
_CLUSTER_FILLER = {0xA7, 0xAB, VOID, CRC32, 0x5854}
_CLUSTER_CHILDREN = {CLUSTER_TIMECODE, SIMPLE_BLOCK, BLOCK_GROUP} | _CLUSTER_FILLER
# No frame of a recording comes near this; a larger size means the bytes are not what
# they seem.
_LARGEST_ELEMENT = 64 * 1024 * 1024
_VIDEO, _AUDIO = 1, 2
@dataclass(frozen=True)
class Track:
    kind: int  # 1 video, 2 audio (Matroska TrackType)
    default_duration: int | None  # nanoseconds per frame, when the track says


@dataclass(frozen=True)
class Head:
    """What comes before the first Cluster of a live-written stream."""
    raw: bytes  # the stream's bytes up to the first Cluster, verbatim
    ebml: bytes  # the EBML header element
    info: list[tuple[int, bytes]]  # Info's children, Duration left out
    kept: list[tuple[int, bytes]]  # level-1 elements kept as they are (Tracks, Tags...)
    timecode_scale: int  # nanoseconds per tick
    tracks: dict[int, Track]

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def has_video(self) -> bool:
        return any(track.kind == _VIDEO for track in self.tracks.values())

    @property
    def cue_track(self) -> int:
        """The track the index points into: the video, or the audio when there is none."""
        for kind in (_VIDEO, _AUDIO):
            for number, track in sorted(self.tracks.items()):
                if track.kind == kind:
                    return number
        raise Unsupported("the stream has neither a video nor an audio track")

    def ticks(self, seconds: float) -> int:
        return round(seconds * 1e9 / self.timecode_scale)

    def seconds(self, ticks: int) -> float:
        return ticks * self.timecode_scale / 1e9

    def encoded(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def decoded(cls, text: str) -> "Head":
        # The head is read up to the first Cluster's ID, which the stored bytes end before.
        return read_head(base64.b64decode(text) + ebml.id_bytes(CLUSTER) + UNKNOWN_SIZE.to_bytes(8, "big"))


def read_head(data) -> Head:
    """The head of a stream, once data reaches the first Cluster; Incomplete before."""
    element, size, start = element_at(data, 0)
    if element != EBML or size is None:
        raise Unsupported("the stream does not start with an EBML header")
    if start + size > len(data):
        raise Incomplete()
    header = bytes(data[:start + size])
    element, _, pos = element_at(data, start + size)
    if element != SEGMENT:
        raise Unsupported("the EBML header is not followed by a Segment")
    info, kept, scale, tracks = None, [], 1_000_000, {}
    while True:
        element, size, start = element_at(data, pos)
        if element == CLUSTER:
            break
        if size is None:
            raise Unsupported(f"element {element:X} before the first cluster has no size")
        if start + size > len(data):
            raise Incomplete()
        body = data[start:start + size]
        if element == INFO:
            info = [(e, b) for e, b in ebml.children(body) if e != DURATION]
            scale = next((ebml.uint(b) for e, b in info if e == TIMECODE_SCALE), scale)
        elif element == TRACKS:
            tracks = _tracks(body)
            kept.append((element, bytes(body)))
        elif element not in _REPLACED:
            kept.append((element, bytes(body)))
        pos = start + size
    if info is None or not tracks:
        raise Unsupported("the stream's head has no Info or no Tracks")
    return Head(raw=bytes(data[:pos]), ebml=header, info=info, kept=kept,
                timecode_scale=scale or 1_000_000, tracks=tracks)


def _tracks(body) -> dict[int, Track]:
    tracks = {}
    for element, entry in ebml.children(body):
        if element != TRACK_ENTRY:
            continue
        fields = dict(ebml.children(entry))
        number = ebml.uint(fields.get(TRACK_NUMBER, b""))
        duration = fields.get(DEFAULT_DURATION)
        tracks[number] = Track(kind=ebml.uint(fields.get(TRACK_TYPE, b"")),
                               default_duration=ebml.uint(duration) if duration else None)
    return tracks


# --- scanning clusters ----------------------------------------------------------------

@dataclass
class Index:
    """What the clusters scanned so far add up to: kept in the fold's state between runs."""
    cues: list[list[int]] = field(default_factory=list)  # [time in ticks, cluster offset]
    end: int = 0  # the latest end of any frame, in ticks
    last_times: dict[str, int] = field(default_factory=dict)  # track -> its last frame's time
    audio_ends: dict[str, int] = field(default_factory=dict)  # audio track -> where it ends

    def copy(self) -> "Index":
        return Index([list(c) for c in self.cues], self.end, dict(self.last_times),
                     dict(self.audio_ends))

    def mark(self) -> tuple:
        """Where the index stands, cheaply: cues are only ever appended."""
        return len(self.cues), self.end, dict(self.last_times), dict(self.audio_ends)

    def at(self, mark: tuple) -> "Index":
        """The index as it stood at a mark of this index or of one it was copied from."""
        cues, end, last_times, audio_ends = mark
        return Index([list(c) for c in self.cues[:cues]], end, dict(last_times), dict(audio_ends))

    def as_json(self) -> dict:
        return {"cues": self.cues, "end": self.end, "last_times": self.last_times,
                "audio_ends": self.audio_ends}

    @classmethod
    def from_json(cls, data: dict) -> "Index":
        # Fold states written before audio ends were kept have none: the check starts anew.
        return cls([list(c) for c in data["cues"]], data["end"], dict(data["last_times"]),
                   dict(data.get("audio_ends", {})))


@dataclass
class Scan:
    boundaries: list[tuple[int, tuple]]  # each cluster start, and Index.mark() before it
    complete: int  # where the last whole element ends: the bytes after it are cut short
    index: Index  # the index up to `complete`
    open_cluster: tuple[int, int] | None  # (start, data start) of a sized cluster cut short

    def whole(self, data) -> bytes:
        """The bytes up to `complete`, a sized cluster cut short resized to what it holds."""
        whole = bytearray(data[:self.complete])
        if self.open_cluster is not None:
            start, data_start = self.open_cluster
            size_at = start + len(ebml.id_bytes(CLUSTER))
            whole[size_at:data_start] = ebml.size_bytes(self.complete - data_start, data_start - size_at)
        return bytes(whole)


def scan_clusters(data, offset: int, head: Head, index: Index) -> Scan:
    """Scan bytes that start at a cluster boundary, `offset` bytes into the clusters.

    Records each cluster's start, indexes the first keyframe of the cue track in each
    cluster, and checks that every frame belongs to a known track and that no track's
    time runs backwards (chunks out of order). Stops where the bytes are cut short.
    """
    index = index.copy()
    cue_track = head.cue_track
    boundaries: list[tuple[int, tuple]] = []
    pos = complete = 0
    cluster_start = cluster_data = cluster_end = cluster_time = None
    cued = False
    while True:
        try:
            element, size, start = element_at(data, pos)
        except Incomplete:
            break
        if element == CLUSTER:
            boundaries.append((pos, index.mark()))
            cluster_start, cluster_data = pos, start
            cluster_end = None if size is None else start + size
            cluster_time, cued = None, False
            pos = complete = start
            continue
        if size is None:
            raise Unsupported(f"element {element:X} inside the clusters has no size")
        # Checked before the element is known to be whole: bytes out of order could
        # otherwise pass for a frame cut short at the end of the recording.
        if element not in (_CLUSTER_CHILDREN if cluster_start is not None else {VOID}):
            if element in _FINISHED_FILE:
                raise Unsupported(f"element {element:X} among the clusters (a finished file)")
            raise Damaged(f"element {element:X} among the clusters at byte {offset + pos}: "
                          "bytes out of order or missing")
        if size > _LARGEST_ELEMENT:
            raise Damaged(f"element {element:X} at byte {offset + pos} claims {size} bytes")
        if start + size > len(data):
            break
        body = data[start:start + size]
        if element == CLUSTER_TIMECODE:
            cluster_time = ebml.uint(body)
        elif element in (SIMPLE_BLOCK, BLOCK_GROUP):
            if cluster_time is None:
                raise Damaged(f"a frame comes before its cluster's time, at byte {offset + pos}")
            track, time, key, duration = _frame(element, body, cluster_time, head)
            previous = index.last_times.get(str(track))
            if previous is not None and time < previous:
                raise Damaged(f"track {track}'s time runs backwards at byte {offset + pos}")
            index.last_times[str(track)] = time
            index.end = max(index.end, time + duration)
            if head.tracks[track].kind == _AUDIO:
                _check_audio_continues(index, head, str(track), time, duration)
            if track == cue_track and not cued:
                cued = True
                if key:
                    index.cues.append([time, offset + cluster_start])
        pos = complete = start + size
        if cluster_end is not None:
            if pos > cluster_end:
                raise Damaged(f"a frame crosses the end of its cluster, at byte {offset + pos}")
            if pos == cluster_end:
                cluster_start = cluster_end = None
    cut_short = cluster_end is not None and cluster_end > complete
    return Scan(boundaries, complete, index, (cluster_start, cluster_data) if cut_short else None)


def _check_audio_continues(index: Index, head: Head, track: str, time: int, duration: int) -> None:
    """Audio is continuous: a frame that starts too long after the last one ended means
    bytes are missing (see chalicelib.media.verify)."""
    previous_end = index.audio_ends.get(track)
    if previous_end is not None:
        try:
            verify.audio_gap(head.seconds(previous_end), head.seconds(time))
        except NotPlayable as gap:
            raise Damaged(gap.message) from None
    index.audio_ends[track] = max(previous_end or 0, time + duration)


def _frame(element: int, body, cluster_time: int, head: Head) -> tuple[int, int, bool, int]:
    """(track, time in ticks, keyframe, duration in ticks) of a SimpleBlock or BlockGroup."""
    duration, key = None, True
    if element == BLOCK_GROUP:
        fields = dict(ebml.children(body))
        if BLOCK not in fields:
            raise Damaged("a block group without a block")
        body, key = fields[BLOCK], REFERENCE_BLOCK not in fields
        duration = ebml.uint(fields[BLOCK_DURATION]) if BLOCK_DURATION in fields else None
    track, pos = ebml.track_number(body)
    if len(body) < pos + 3:
        raise Damaged("a block is shorter than its header")
    if track not in head.tracks:
        raise Damaged(f"a frame of track {track}, which the head does not declare")
    time = cluster_time + int.from_bytes(body[pos:pos + 2], "big", signed=True)
    if element == SIMPLE_BLOCK:
        key = bool(body[pos + 2] & 0x80)
    if duration is None:
        per_frame = head.tracks[track].default_duration
        duration = round(per_frame / head.timecode_scale) if per_frame else 0
    return track, time, key, duration
