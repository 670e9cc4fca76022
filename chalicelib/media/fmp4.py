"""Fragmented MP4, read without touching the media, and the new head that makes it seekable.

MediaRecorder's MP4 (Safari's, and Chromium's video/mp4) is a fragmented stream: an `ftyp`,
a `moov` that describes the tracks but lists no sample (its sample tables are empty; its
`mvex` says fragments follow), then fragments: a `moof` holding, per track, a `traf` (`tfhd`
with defaults, `tfdt` the decode time of its first sample, `trun`s with each sample's
duration, size and flags) and the `mdat` with those samples' bytes. The counterpart of
chalicelib.media.matroska and chalicelib.media.seekable_head, with the same interface.

Why the fragments can stay byte for byte behind a new head: a trun finds its samples by an
offset relative to its own moof (tfhd flag default-base-is-moof; with no flag at all the
first traf counts from the moof too, and each next one from where the previous one's data
ends). A stream whose tfhd carries a base-data-offset counts from the file's first byte: a
head of another length would make it point at the wrong bytes, so it is Unsupported.

Why the new head has a `sidx` per track that reaches the end of the file: without an index,
ffmpeg's mov demuxer (Chromium plays MP4 files through it) reads every moof of the file
before the first frame, which over the network is slow for a long recording. A sidx in the
head lists each fragment's byte size, duration and whether it starts with a keyframe;
ffmpeg trusts it, and stops walking the fragments, only when its references add up to
exactly the end of the file. It seeks every stream, each by its own track's index: with one
sidx for the video alone, Chromium found the video's fragment at once and then read the
fragments from the start to place the audio (30-45 Range requests per seek in
tests/e2e/test_seeking.py; 2 with a sidx per track).

Time: a track's fragment may not start (tfdt) at or before the last sample of the track's
previous one: a piece missing or out of order shows so, and as a gap in the mfhd sequence
numbers. It may start before that sample's stated end, or after it: Chromium cannot know
the duration of a fragment's last sample, so its sample durations fall short of the next
tfdt (by up to 39 ms in tests/fixtures/chromium-stalls) or run past it (seen in a live
video/mp4 recording), and video may pause. Audio that jumps further than chalicelib.media.verify allows is damage.

The live stream's moov says every duration is 0: write_head sets them (mvhd, tkhd, mdhd, and
an mvex/mehd for the whole fragmented movie) from what the scan of the fragments found.

Reads box headers and the moofs (a few hundred bytes per fragment), never an mdat's body.
"""
import base64
import struct
from dataclasses import dataclass, field

from chalicelib.errors import NotPlayable
from chalicelib.media import mp4_boxes as boxes
from chalicelib.media import verify
from chalicelib.media.ebml import Damaged, Incomplete, Unsupported  # noqa: F401

# No fragment of a recording comes near this; a larger size means the bytes are not boxes.
_LARGEST_BOX = 64 * 1024 * 1024
# tfhd flags
_BASE_DATA_OFFSET, _SAMPLE_DESCRIPTION = 0x000001, 0x000002
_DEFAULT_DURATION, _DEFAULT_SIZE, _DEFAULT_FLAGS = 0x000008, 0x000010, 0x000020
_DEFAULT_BASE_IS_MOOF = 0x020000
# trun flags, and the per-sample fields in the order they are stored
_DATA_OFFSET, _FIRST_SAMPLE_FLAGS = 0x001, 0x004
_SAMPLE_FIELDS = ((0x100, "duration"), (0x200, "size"), (0x400, "flags"), (0x800, "time offset"))
_NON_SYNC = 0x00010000  # sample_is_non_sync_sample, in sample flags
# Top-level boxes among the fragments. A fragment may start with boxes that belong to the
# next moof (a segment type, a producer time, an event message); free space after an mdat
# belongs to the fragment before.
_FRAGMENT_PREFIX = {"styp", "prft", "emsg"}
_FILLER = {"free", "skip"}
_HEAD_BOXES_LATER = {"ftyp", "moov"}
_DUMMY_MOOF_HEADER = struct.pack(">I4s", 8, b"moof")


# --- the head -------------------------------------------------------------------------

@dataclass(frozen=True)
class Track:
    track_id: int
    handler: str  # "vide", "soun" (or another handler, which only passes through)
    timescale: int  # mdhd: the track's ticks per second
    # trex: what a fragment that does not say uses
    default_sample_duration: int
    default_sample_size: int
    default_sample_flags: int


@dataclass(frozen=True)
class Head:
    """What comes before the first moof of a fragmented MP4 stream."""
    raw: bytes  # the stream's bytes up to the first moof, verbatim
    ftyp: bytes  # the ftyp box
    moov: bytes  # the moov box
    movie_timescale: int  # mvhd: the ticks of the movie-wide durations
    tracks: dict[int, Track]

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def has_video(self) -> bool:
        return any(track.handler == "vide" for track in self.tracks.values())

    @property
    def reference_track(self) -> Track:
        """The track the index points into: the video, or the audio when there is none."""
        for handler in ("vide", "soun"):
            for _, track in sorted(self.tracks.items()):
                if track.handler == handler:
                    return track
        raise Unsupported("the stream has neither a video nor an audio track")

    def ticks(self, seconds: float) -> int:
        return round(seconds * self.reference_track.timescale)

    def seconds(self, ticks: int) -> float:
        return ticks / self.reference_track.timescale

    def encoded(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def decoded(cls, text: str) -> "Head":
        # The head is read up to the first moof's header, which the stored bytes end before.
        return read_head(base64.b64decode(text) + _DUMMY_MOOF_HEADER)


def read_head(data) -> Head:
    """The head of a stream once data reaches the first moof's header; Incomplete before."""
    kind, _, _ = boxes.box_at(data, 0)
    if kind != "ftyp":
        raise Unsupported("the MP4 stream does not start with an ftyp box")
    pos, ftyp, moov, movie = 0, None, None, None
    while True:
        kind, body, end = boxes.box_at(data, pos)
        if kind == "moof":
            break
        if kind == "mdat":
            raise Unsupported("the MP4 has media data before any fragment: a plain MP4 file, "
                              "not a fragmented stream")
        if end - pos > _LARGEST_BOX:
            raise Unsupported(f"the MP4's {kind!r} box before the first fragment is too large")
        if end > len(data):
            raise Incomplete()
        if kind == "ftyp" and ftyp is None:
            ftyp = bytes(data[pos:end])
        elif kind == "moov" and moov is None:
            moov, movie = bytes(data[pos:end]), _movie(data, body, end)  # refused as soon as seen
        elif kind in _HEAD_BOXES_LATER:
            raise Unsupported(f"the MP4 has a second {kind!r} box")
        pos = end
    if moov is None:
        raise Unsupported("the MP4 stream has no moov box before its first fragment")
    return Head(raw=bytes(data[:pos]), ftyp=ftyp, moov=moov, movie_timescale=movie[0],
                tracks=movie[1])


def _movie(data, start: int, end: int) -> tuple[int, dict[int, Track]]:
    """The movie timescale and the tracks of a moov's body."""
    mvhd, mvex = boxes.child(data, start, end, "mvhd"), boxes.child(data, start, end, "mvex")
    if mvhd is None:
        raise Unsupported("the MP4's moov has no mvhd")
    if mvex is None:
        raise Unsupported("the MP4 is not fragmented (its moov has no mvex): a plain MP4 file")
    defaults = {}
    for kind, _, body, _ in boxes.children(data, *mvex):
        if kind == "trex":
            track_id, _, duration, size, flags = struct.unpack_from(">5I", data, body + 4)
            defaults[track_id] = (duration, size, flags)
    tracks = {}
    for kind, _, body, box_end in boxes.children(data, start, end):
        if kind != "trak":
            continue
        tkhd, mdhd = boxes.child(data, body, box_end, "tkhd"), boxes.child(data, body, box_end, "mdia/mdhd")
        hdlr = boxes.child(data, body, box_end, "mdia/hdlr")
        stbl = boxes.child(data, body, box_end, "mdia/minf/stbl")
        if tkhd is None or mdhd is None or hdlr is None:
            raise Unsupported("a track of the MP4 has no tkhd, mdhd or hdlr")
        if stbl is not None and _lists_samples(data, *stbl):
            raise Unsupported("the MP4's moov lists samples itself: a plain MP4 file, "
                              "not a fragmented stream")
        track_id = boxes.u32(data, boxes.after_times(data, tkhd[0]))
        tracks[track_id] = Track(track_id, bytes(data[hdlr[0] + 8:hdlr[0] + 12]).decode("latin-1"),
                                 boxes.u32(data, boxes.after_times(data, mdhd[0])),
                                 *defaults.get(track_id, (0, 0, 0)))
    if not any(track.handler in ("vide", "soun") for track in tracks.values()):
        raise Unsupported("the MP4 has neither a video nor an audio track")
    return boxes.u32(data, boxes.after_times(data, mvhd[0])), tracks


def _lists_samples(data, start: int, end: int) -> bool:
    """Whether a sample table (stbl) holds samples: a moov that is not a fragmented one's."""
    count_at = {"stts": 4, "stco": 4, "co64": 4, "stsz": 8, "stz2": 8}
    return any(boxes.u32(data, body + count_at[kind]) for kind, _, body, _ in boxes.children(data, start, end)
               if kind in count_at)


# --- scanning fragments ---------------------------------------------------------------

@dataclass
class Index:
    """What the fragments scanned so far add up to: kept in the fold's state between runs."""
    # Each fragment: [time (reference track's ticks, from its tfdt), offset (bytes after the
    # head), duration of the reference track in it, 1 when that starts with a keyframe,
    # and per track in it [track ID, time, duration, 1 when it starts with a sync sample]
    # in that track's ticks: each track gets its own sidx]
    fragments: list[list] = field(default_factory=list)
    end: int = 0  # where the longest track ends, in the reference track's ticks
    # Track -> the decode time its next fragment must start at (its own ticks): where the
    # track ends so far, for the audio gap check too.
    track_ends: dict[str, int] = field(default_factory=dict)
    sequence: int | None = None  # the last fragment's mfhd sequence number
    # Track -> the decode time of its last sample so far: the next fragment may start
    # before track_ends (the last sample's duration was a guess), never before this.
    track_last: dict[str, int] = field(default_factory=dict)

    @property
    def cues(self) -> list[list[int]]:
        """[time, offset] of each fragment that starts with a keyframe."""
        return [[time, offset] for time, offset, _, sap, _ in self.fragments if sap]

    def copy(self) -> "Index":
        return self.at(self.mark())

    def mark(self) -> tuple:
        """Where the index stands, cheaply: fragments are only ever appended."""
        return (len(self.fragments), self.end, dict(self.track_ends), self.sequence,
                dict(self.track_last))

    def at(self, mark: tuple) -> "Index":
        """The index as it stood at a mark of this index or of one it was copied from."""
        count, end, track_ends, sequence, track_last = mark
        return Index([list(f) for f in self.fragments[:count]], end, dict(track_ends), sequence,
                     dict(track_last))

    def as_json(self) -> dict:
        return {"fragments": self.fragments, "end": self.end, "track_ends": self.track_ends,
                "sequence": self.sequence, "track_last": self.track_last}

    @classmethod
    def from_json(cls, data: dict) -> "Index":
        return cls([list(f) for f in data["fragments"]], data["end"], dict(data["track_ends"]),
                   data["sequence"], dict(data.get("track_last", {})))


@dataclass
class Scan:
    boundaries: list[tuple[int, tuple]]  # each fragment's start, and Index.mark() before it
    complete: int  # where the last whole fragment ends: the bytes after it are cut short
    index: Index  # the index up to `complete`

    def whole(self, data) -> bytes:
        return bytes(data[:self.complete])


@dataclass
class _Run:
    """One traf of a moof: a track's samples in the fragment."""
    track_id: int
    decode_time: int | None  # tfdt, when the traf has one
    duration: int  # of all its samples, in the track's ticks
    last_duration: int  # of its last sample: a recorder's guess, the next sample not yet known
    starts_with_sync: bool
    data: list[tuple[int, int]]  # byte ranges of its samples, from the moof's start


def scan(data, offset: int, head: Head, index: Index) -> Scan:
    """Scan bytes that start at a fragment boundary, `offset` bytes into the fragments.

    Records each fragment's start, time and duration, and checks that no fragment is
    missing (mfhd sequence numbers), no track's time runs backwards or audio jumps (tfdt),
    every trun's samples lie in its mdat, and every traf is of a known track. Stops where
    the bytes are cut short, or at an `mfra`: ffmpeg ends a stream with one (an index of
    the fragments, useless once the head has a sidx), so the fragments end there.
    """
    index = index.copy()
    boundaries: list[tuple[int, tuple]] = []
    pos = complete = 0
    fragment_start = None  # where the fragment being read starts (a prefix box or its moof)
    ended_fragment = False  # the last box read ended a fragment: free space after it is its
    while True:
        try:
            kind, body, end = boxes.box_at(data, pos)
        except Incomplete:
            break
        at = offset + pos
        if kind == "mfra":
            break
        if kind in _HEAD_BOXES_LATER:
            raise Damaged(f"a {kind!r} box among the fragments at byte {at}: "
                          "bytes out of order, or a second file")
        if kind == "sidx":
            raise Unsupported("the MP4's fragments carry their own sidx index")
        # Checked before the box is known to be whole: bytes out of order could otherwise
        # pass for a fragment cut short at the end of the recording.
        if kind not in _FRAGMENT_PREFIX | _FILLER | {"moof", "mdat"}:
            raise Damaged(f"a {kind!r} box among the fragments at byte {at}: "
                          "bytes out of order or missing")
        if end - pos > _LARGEST_BOX:
            raise Damaged(f"a {kind!r} box at byte {at} claims {end - pos} bytes")
        if kind == "mdat":
            raise Damaged(f"an mdat without its moof at byte {at}: bytes out of order or missing")
        if kind in _FILLER and ended_fragment:
            if end > len(data):
                break
            pos = complete = end
            continue
        if fragment_start is None:
            fragment_start = pos
        ended_fragment = False
        if kind != "moof":  # a prefix of the next fragment
            if end > len(data):
                break
            pos = end
            continue
        boundaries.append((fragment_start, index.mark()))
        if end > len(data):
            break
        sequence, runs = _read_moof(data, body, end, head, at)
        try:
            media_kind, media_body, media_end = boxes.box_at(data, end)
        except Incomplete:
            break
        if media_kind != "mdat":
            raise Damaged(f"the moof at byte {at} is not followed by its mdat")
        if media_end - end > _LARGEST_BOX:
            raise Damaged(f"the mdat at byte {offset + end} claims {media_end - end} bytes")
        for run in runs:
            if any(a < media_body - pos or b > media_end - pos for a, b in run.data):
                raise Damaged(f"samples of the moof at byte {at} lie outside its mdat")
        if media_end > len(data):
            break
        _record(index, head, sequence, runs, offset + fragment_start, at)
        pos = complete = media_end
        fragment_start, ended_fragment = None, True
    return Scan(boundaries, complete, index)


def _read_moof(data, start: int, end: int, head: Head, at: int) -> tuple[int, list[_Run]]:
    """The sequence number and the runs of a moof's body."""
    sequence, runs, data_end = None, [], None
    for kind, _, body, box_end in boxes.children(data, start, end):
        if kind == "mfhd":
            sequence = boxes.u32(data, body + 4)
        elif kind == "traf":
            run, data_end = _read_traf(data, body, box_end, head, at, data_end)
            if run is not None:
                runs.append(run)
    if sequence is None:
        raise Damaged(f"the moof at byte {at} has no mfhd")
    return sequence, runs


def _read_traf(data, start: int, end: int, head: Head, at: int,
               previous_end: int | None) -> tuple[_Run | None, int]:
    """A traf's run (None when it has no sample), and where its data ends from the moof."""
    inside = boxes.children(data, start, end)
    tfhd = next((body for kind, _, body, _ in inside if kind == "tfhd"), None)
    if tfhd is None:
        raise Damaged(f"a traf of the moof at byte {at} has no tfhd")
    flags, track_id = boxes.u32(data, tfhd) & 0xFFFFFF, boxes.u32(data, tfhd + 4)
    track = head.tracks.get(track_id)
    if track is None:
        raise Damaged(f"the moof at byte {at} has samples of track {track_id}, "
                      "which the head does not declare")
    if flags & _BASE_DATA_OFFSET:
        raise Unsupported("the MP4's fragments point at their samples with absolute data "
                          "offsets: they cannot be moved behind a new head")
    field_at = tfhd + 8 + (4 if flags & _SAMPLE_DESCRIPTION else 0)
    defaults = [track.default_sample_duration, track.default_sample_size, track.default_sample_flags]
    for i, flag in enumerate((_DEFAULT_DURATION, _DEFAULT_SIZE, _DEFAULT_FLAGS)):
        if flags & flag:
            defaults[i], field_at = boxes.u32(data, field_at), field_at + 4
    duration, size, sample_flags = defaults
    decode_time = None
    for kind, _, body, _ in inside:
        if kind == "tfdt":
            decode_time = struct.unpack_from(">Q" if data[body] == 1 else ">I", data, body + 4)[0]
    # Relative to the moof, or (neither flag) to where the previous traf's data ends.
    base = 0 if flags & _DEFAULT_BASE_IS_MOOF or previous_end is None else previous_end
    cursor, total, last, first_flags, ranges = base, 0, 0, None, []
    for kind, _, body, box_end in inside:
        run_flags, count = ((boxes.u32(data, body) & 0xFFFFFF, boxes.u32(data, body + 4))
                            if kind == "trun" else (0, 0))
        if count == 0:
            continue
        field_at = body + 8
        if run_flags & _DATA_OFFSET:
            cursor, field_at = base + struct.unpack_from(">i", data, field_at)[0], field_at + 4
        first = None
        if run_flags & _FIRST_SAMPLE_FLAGS:
            first, field_at = boxes.u32(data, field_at), field_at + 4
        names = [name for flag, name in _SAMPLE_FIELDS if run_flags & flag]
        table_end = field_at + 4 * len(names) * count
        if table_end > box_end:
            raise Damaged(f"a trun of the moof at byte {at} is shorter than its samples")
        # Column by column: {"duration": (each sample's), "size": (...), ...}
        samples = dict(zip(names, zip(*struct.iter_unpack(">" + "I" * len(names),
                                                          data[field_at:table_end])))) if names else {}
        total += sum(samples["duration"]) if "duration" in samples else duration * count
        last = samples["duration"][-1] if "duration" in samples else duration
        sizes = sum(samples["size"]) if "size" in samples else size * count
        if first_flags is None:
            first_flags = first if first is not None else samples.get("flags", [sample_flags])[0]
        ranges.append((cursor, cursor + sizes))
        cursor += sizes
    if first_flags is None:
        return None, cursor
    return _Run(track_id, decode_time, total, last, not first_flags & _NON_SYNC, ranges), cursor


def _record(index: Index, head: Head, sequence: int, runs: list[_Run], fragment_at: int,
            at: int) -> None:
    """Checks a whole fragment against the index, and adds it."""
    if index.sequence is not None and sequence != index.sequence + 1:
        raise Damaged(f"fragment {sequence} at byte {at} follows fragment {index.sequence}: "
                      "a piece of the recording is missing or out of order")
    index.sequence = sequence
    reference = head.reference_track
    time, duration, sync = None, 0, False
    tracks: dict[int, list[int]] = {}
    for run in runs:
        track, key = head.tracks[run.track_id], str(run.track_id)
        expected = index.track_ends.get(key)
        start = run.decode_time if run.decode_time is not None else expected or 0
        if expected is not None:
            # Chromium guesses the duration of a fragment's last sample (it cannot know the
            # next one's time yet), too long or too short: only a start before that last
            # sample's own time is time running backwards.
            if start < index.track_last.get(key, expected):
                raise Damaged(f"track {run.track_id}'s time runs backwards at byte {at}")
            if track.handler == "soun":
                _check_audio_continues(expected / track.timescale, start / track.timescale)
        index.track_ends[key] = start + run.duration
        index.track_last[key] = start + run.duration - run.last_duration
        if run.track_id in tracks:
            tracks[run.track_id][2] += run.duration
        else:
            tracks[run.track_id] = [run.track_id, start, run.duration, int(run.starts_with_sync)]
        index.end = max(index.end, round((start + run.duration) * reference.timescale / track.timescale))
        if run.track_id == reference.track_id:
            if time is None:
                time, sync = start, run.starts_with_sync
            duration += run.duration
    if time is None:  # a fragment without the reference track: it goes on where that ended
        time = index.track_ends.get(str(reference.track_id), 0)
    index.fragments.append([time, fragment_at, duration, int(sync), list(tracks.values())])
    if len(index.fragments) > 0xFFFF:
        raise Unsupported("the MP4 has more fragments than one sidx index can list")


def _check_audio_continues(previous_end: float, start: float) -> None:
    """Audio is continuous: a fragment that starts too long after the track's last one
    ended means bytes are missing (see chalicelib.media.verify). Video may pause."""
    try:
        verify.audio_gap(previous_end, start)
    except NotPlayable as gap:
        raise Damaged(gap.message) from None


# --- the new head ---------------------------------------------------------------------

def write_head(head: Head, index: Index, fragments_end: int, seekable: bool = True) -> bytes:
    """A new head for the stream's fragments: the ftyp, the moov with the durations the
    index knows, and (when seekable) a sidx over every fragment up to fragments_end, the
    offset where the file will end. The fragments follow it byte for byte.

    Not seekable: for a file that starts mid-stream, where a sidx would not fit the bytes.
    """
    track_ends = {track_id: index.track_ends.get(str(track_id), 0) for track_id in head.tracks}
    in_movie = {track_id: -(-end * head.movie_timescale // head.tracks[track_id].timescale)
                for track_id, end in track_ends.items()}
    movie_duration = max(in_movie.values(), default=0)

    def trak(box: bytes) -> bytes:
        _, body, end = boxes.box_at(box, 0)
        tkhd = boxes.child(box, body, end, "tkhd")
        track_id = boxes.u32(box, boxes.after_times(box, tkhd[0]))
        return boxes.rewritten(box, {"tkhd": lambda b: boxes.with_duration(b, in_movie[track_id], 2),
                                     "mdhd": lambda b: boxes.with_duration(b, track_ends[track_id], 1)})

    moov = boxes.rewritten(head.moov, {"mvhd": lambda b: boxes.with_duration(b, movie_duration, 1),
                                       "trak": trak, "mvex": lambda b: _with_mehd(b, movie_duration)})
    return head.ftyp + moov + (_sidx(head, index, fragments_end) if seekable else b"")


def _with_mehd(mvex: bytes, duration: int) -> bytes:
    """The mvex with an mehd (the whole fragmented movie's duration) first, replacing one."""
    _, body, end = boxes.box_at(mvex, 0)
    mehd = boxes.box("mehd", b"\0\0\0\0" + struct.pack(">I", duration) if duration < 1 << 32
                else b"\x01\0\0\0" + struct.pack(">Q", duration))
    kept = [mvex[start:box_end] for kind, start, _, box_end in boxes.children(mvex, body, end)
            if kind != "mehd"]
    return boxes.box("mvex", mehd + b"".join(kept))


def _sidx(head: Head, index: Index, fragments_end: int) -> bytes:
    """One sidx per track, the reference track's first, each with one reference per
    fragment. ffmpeg (and so Chromium) seeks every stream: a track without its own sidx is
    found by reading the fragments from the start up to the time sought."""
    order = [head.reference_track.track_id] + sorted(set(head.tracks) - {head.reference_track.track_id})
    sidxes = [_track_sidx(head.tracks[track_id], index.fragments, fragments_end) for track_id in order]
    # Each sidx's offsets count from its own end: all but the last skip the ones after it.
    following = [sum(len(box) for box in sidxes[i + 1:]) for i in range(len(sidxes))]
    return b"".join(_track_sidx(head.tracks[track_id], index.fragments, fragments_end, skip)
                    for track_id, skip in zip(order, following))


def _track_sidx(track: Track, fragments: list[list], fragments_end: int, skip: int = 0) -> bytes:
    """A track's sidx. Each reference's duration runs to the track's time in the next
    fragment, so the index's times stay those of the fragments across a pause."""
    runs = []  # the track's [time, duration, sync] in each fragment
    end = 0
    for fragment in fragments:
        run = next(([t, d, s] for track_id, t, d, s in fragment[4] if track_id == track.track_id),
                   [end, 0, 0])  # not in this fragment: it goes on where it ended
        end = run[0] + run[1]
        runs.append(run)
    references = []
    for i, ((time, duration, sync), fragment) in enumerate(zip(runs, fragments)):
        last = i + 1 == len(fragments)
        size = (fragments_end if last else fragments[i + 1][1]) - fragment[1]
        length = duration if last else runs[i + 1][0] - time
        # starts_with_SAP, SAP_type 1 (a keyframe everything after it can be decoded from)
        references.append(struct.pack(">III", size, length, sync << 31 | sync << 28))
    earliest = runs[0][0] if runs else 0
    first_offset = (fragments[0][1] if fragments else 0) + skip
    if earliest < 1 << 32 and first_offset < 1 << 32:
        version, times = b"\0\0\0\0", struct.pack(">II", earliest, first_offset)
    else:
        version, times = b"\x01\0\0\0", struct.pack(">QQ", earliest, first_offset)
    return boxes.box("sidx", version + struct.pack(">II", track.track_id, track.timescale) + times
                + struct.pack(">HH", 0, len(references)) + b"".join(references))
