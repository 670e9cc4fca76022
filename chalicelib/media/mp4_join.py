"""MP4 files joined by stream copy without ffmpeg: the encoded pieces of a video (one video
track each, in order) and its audio (one track) become one MP4 with its index first.

Why not ffmpeg's concat demuxer and +faststart: ffmpeg reads every byte of every piece,
writes the joined file, then rewrites all of it to move the index to the front (at an hour
of 720p, 1.3 GB read once and written twice). The samples need none of that. The joined
file is a new moov, computed from the pieces' sample tables (a few hundred kB at most),
followed by the samples' bytes copied as they are, in an order chosen here. `join` works
from the files' heads alone and says which byte ranges of which file follow the new head,
so the file can be written front to back in one pass: to a local file (`write`), or into an
upload as the ranges arrive.

The joined video track, from the pieces' tables:

- each piece keeps its samples' sizes, composition offsets (ctts) and keyframes (stss,
  renumbered); every piece must have the same sample description (stsd) and timescale;
- piece k is shown from s_k, its empty edit (the source's time, kept by the encoder), with
  its media from m_k (the encoder's delay for B-frames). Its samples are placed at decode
  time D_k = (s_k - s_0) * T / M - m_k + m_0 of the joined track (T: the track's ticks per
  second, M: the movie's), so every frame is shown at the time it had in its piece, however
  many pieces come before: nothing drifts. The last sample of a piece lasts until the next
  piece's first: after a pause with no frames (a screen recording sends none while nothing
  moves), the last frame stays on screen until the next piece starts, as in the source;
- one edit: empty up to s_0 (from the origin), then the media from m_0 to the last piece's end.

The audio track is the audio file's, as it is (its edit list skips AAC's priming samples),
placed after the origin by an empty edit: origin = min(video start, audio start), so audio
and video keep the offset the source had between them.

The samples are written in chunks of about CHUNK_SECONDS, the audio's and the video's in
order of time (a chunk never spans two pieces): a player that reads the file front to back
(Safari, while it downloads) finds both tracks' samples for the same second side by side.
"""
import itertools
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable

from chalicelib.errors import NotPlayable
from chalicelib.media import mp4_boxes as boxes
from chalicelib.media.ebml import Incomplete, Unsupported

CHUNK_SECONDS = 1.0
COPY_BYTES = 8 * 1024 * 1024  # read from a file at a time
# The boxes of a video piece's sample table the join rewrites; any other one describes the
# samples in a way the join would have to carry over, so the piece is refused.
_VIDEO_TABLES = {"stsd", "stts", "ctts", "stss", "stsz", "stsc", "stco", "co64"}
_VISUAL_FIELDS = 78  # of a video sample entry, before its boxes (avcC, pasp, btrt)
_EMPTY = -1  # an edit's media time that means: nothing shown (a delay)
_LARGEST_HEAD = 256 * 1024 * 1024  # far beyond any moov of a day's recording


@dataclass
class Track:
    """One file's single track, as its moov describes it (times in the track's ticks,
    edits in the movie's)."""
    ftyp: bytes
    moov: bytes
    trak: bytes
    movie_timescale: int
    timescale: int
    handler: str
    starts_at: int  # the leading empty edits: when the track starts, in movie ticks
    edits: list[tuple[int, int]]  # the other edits: (duration in movie ticks, media time)
    stsd: bytes
    durations: list[int]
    composition_offsets: list[int] | None  # ctts, None when it has none
    syncs: list[int] | None  # stss: 1-based numbers of the keyframes; None: every sample
    sizes: list[int]
    positions: list[int]  # where each sample's bytes are in its file


@dataclass(frozen=True)
class Joined:
    head: bytes  # the joined file's first bytes: ftyp, moov and the mdat's header
    spans: list[tuple[int, int, int]]  # then these: (file, offset, size); the audio's file
    # comes after the pieces' (number len(pieces))
    size: int  # of the whole file
    frames: int  # the video's samples
    video_end: float  # seconds from the start of the file
    audio_end: float | None


def read_head(read_at: Callable[[int, int], bytes]) -> tuple[bytes, bytes]:
    """(ftyp, moov) of an MP4, read through read_at(offset, count) (fewer bytes at the
    end of the file) a box header at a time: the media (mdat) is skipped, wherever it is."""
    position, ftyp = 0, b""
    while True:
        try:
            kind, _, length = boxes.box_at(read_at(position, 16), 0)
        except Incomplete:
            raise NotPlayable("an MP4 to join has no moov box") from None
        if kind == "moov":
            if length > _LARGEST_HEAD:
                raise NotPlayable(f"an MP4 to join has a moov of {length} bytes")
            return ftyp, read_at(position, length)
        if kind == "ftyp":
            ftyp = read_at(position, length)
        position += length


def read_file_head(path: str) -> tuple[bytes, bytes]:
    with open(path, "rb") as file:
        def read_at(offset: int, count: int) -> bytes:
            file.seek(offset)
            return file.read(count)
        return read_head(read_at)


def track(ftyp: bytes, moov: bytes) -> Track:
    """The single track of a file's moov, with its sample tables read."""
    _, body, end = boxes.box_at(moov, 0)
    traks = [(start, box_end) for kind, start, _, box_end in boxes.children(moov, body, end)
             if kind == "trak"]
    if len(traks) != 1:
        raise Unsupported(f"a file to join has {len(traks)} tracks, not one")
    mvhd = boxes.child(moov, body, end, "mvhd")
    trak = moov[traks[0][0]:traks[0][1]]
    _, body, end = boxes.box_at(trak, 0)
    mdhd, hdlr = boxes.child(trak, body, end, "mdia/mdhd"), boxes.child(trak, body, end, "mdia/hdlr")
    stbl = boxes.child(trak, body, end, "mdia/minf/stbl")
    if None in (mvhd, mdhd, hdlr, stbl):
        raise Unsupported("a file to join lacks a track header or a sample table")
    tables = {kind: (table, box_end) for kind, _, table, box_end in boxes.children(trak, *stbl)}
    if {"stsd", "stts", "stsz", "stsc"} - set(tables) or not {"stco", "co64"} & set(tables):
        raise Unsupported("a file to join lacks one of its sample tables")
    movie_timescale = boxes.u32(moov, boxes.after_times(moov, mvhd[0]))
    timescale = boxes.u32(trak, boxes.after_times(trak, mdhd[0]))
    durations = _expanded(_entries(trak, tables["stts"], "II"))
    sizes = _sample_sizes(trak, tables["stsz"])
    if len(durations) != len(sizes):
        raise Unsupported("a file to join has tables of different sample counts")
    offsets = None
    if "ctts" in tables:
        signed = trak[tables["ctts"][0]] == 1
        offsets = _expanded(_entries(trak, tables["ctts"], "Ii" if signed else "II"))
    syncs = [number for (number,) in _entries(trak, tables["stss"], "I")] if "stss" in tables else None
    starts_at, edits = _edits(trak, boxes.child(trak, body, end, "edts/elst"), movie_timescale,
                              timescale, sum(durations))
    handler = trak[hdlr[0] + 8:hdlr[0] + 12].decode("latin-1")
    stsd_body, stsd_end = tables["stsd"]
    stsd = trak[stsd_body - 8:stsd_end]
    return Track(ftyp, moov, trak, movie_timescale, timescale, handler, starts_at, edits,
                 _without_bitrate(stsd) if handler == "vide" else stsd, durations, offsets, syncs, sizes,
                 _positions(trak, tables, sizes))


def join(pieces: list[Track], audio: Track | None = None) -> Joined:
    """The head and the byte ranges of the pieces' video joined, with the audio beside it."""
    if not pieces:
        raise NotPlayable("there are no pieces to join")
    first = pieces[0]
    for number, piece in enumerate(pieces):
        if piece.handler != "vide" or len(piece.edits) != 1:
            raise Unsupported(f"piece {number} is not one video track shown in one edit")
        if (piece.stsd, piece.timescale, piece.movie_timescale) != (
                first.stsd, first.timescale, first.movie_timescale):
            raise Unsupported(f"piece {number} was not encoded as piece 0 was (its sample "
                              "description or timescale differs)")
    if audio is not None and (audio.handler != "soun" or audio.movie_timescale != first.movie_timescale):
        raise Unsupported("the audio to join is not one sound track in the pieces' movie timescale")
    movie, scale = first.movie_timescale, first.timescale
    starts = [piece.starts_at for piece in pieces]
    if any(later <= earlier for earlier, later in zip(starts, starts[1:])):
        raise NotPlayable(f"the pieces do not follow each other (start times "
                          f"{[start / movie for start in starts]})")
    media_first = first.edits[0][1]
    decode_starts = [round((start - starts[0]) * scale / movie) - piece.edits[0][1] + media_first
                     for start, piece in zip(starts, pieces)]
    durations: list[list[int]] = []
    for number, piece in enumerate(pieces):
        own = list(piece.durations)
        if number + 1 < len(pieces):
            own[-1] = decode_starts[number + 1] - decode_starts[number] - sum(own[:-1])
            if own[-1] <= 0:
                raise NotPlayable(f"piece {number} lasts past the start of piece {number + 1}")
        # frames shown before the edit's start would overlap the piece before (the
        # encoder's first frames are the earliest; a few dozen cover any reordering)
        decoded = itertools.accumulate(own[:63], initial=0)
        shown = min(time + offset for time, offset in zip(decoded, piece.composition_offsets or [0] * 64))
        if shown < piece.edits[0][1]:
            raise NotPlayable(f"piece {number} has frames before its edit starts")
        durations.append(own)
    origin = min(starts[0], audio.starts_at) if audio is not None else starts[0]
    video_shown = starts[-1] - starts[0] + pieces[-1].edits[0][0]
    video_edits = [(starts[0] - origin, _EMPTY)] * (starts[0] > origin) + [(video_shown, media_first)]
    audio_edits = []
    if audio is not None:
        audio_edits = [(audio.starts_at - origin, _EMPTY)] * (audio.starts_at > origin) + audio.edits

    chunks = _video_chunks(pieces, durations, decode_starts, (starts[0] - origin) / movie - media_first / scale)
    if audio is not None:
        chunks += _chunks(len(pieces), audio, audio.durations, 0,
                          (audio.starts_at - origin) / movie - audio.edits[0][1] / audio.timescale, 1)
    chunks.sort(key=lambda chunk: (chunk[0], chunk[1]))
    payload = sum(chunk[5] for chunk in chunks)

    def moov(head_size: int, wide: bool) -> bytes:
        offsets, counts, at = ([], []), ([], []), head_size
        for _, kind, _, _, samples, size in chunks:
            offsets[kind].append(at)
            counts[kind].append(samples)
            at += size
        tracks = [_video_trak(pieces, durations, video_edits, counts[0], offsets[0], wide)]
        if audio is not None:
            tracks.append(_audio_trak(audio, audio_edits, counts[1], offsets[1], wide))
        _, body, end = boxes.box_at(first.moov, 0)
        header, others = b"", []
        for kind, start, _, box_end in boxes.children(first.moov, body, end):
            if kind == "mvhd":  # its last field is the next track ID
                mvhd = first.moov[start:box_end - 4] + struct.pack(">I", len(tracks) + 1)
                header = boxes.with_duration(mvhd, max(_edits_length(video_edits),
                                                       _edits_length(audio_edits)), 1)
            elif kind != "trak":
                others.append(first.moov[start:box_end])  # udta: the encoder's name
        return boxes.box("moov", header + b"".join(tracks) + b"".join(others))

    # 64-bit offsets (co64, and the mdat's 64-bit size) when the file may pass 4 GiB; the
    # estimate counts 64-bit offsets, so a file just under it may have them too (harmless)
    wide = len(first.ftyp) + len(moov(0, True)) + 16 + payload >= 1 << 32
    head_size = len(first.ftyp) + len(moov(0, wide)) + (16 if wide else 8)
    mdat = (struct.pack(">I4sQ", 1, b"mdat", payload + 16) if wide
            else struct.pack(">I4s", payload + 8, b"mdat"))
    head = first.ftyp + moov(head_size, wide) + mdat
    spans: list[tuple[int, int, int]] = []
    for _, _, source, offset, _, size in chunks:
        if spans and spans[-1][0] == source and spans[-1][1] + spans[-1][2] == offset:
            spans[-1] = (source, spans[-1][1], spans[-1][2] + size)
        else:
            spans.append((source, offset, size))
    return Joined(head, spans, len(head) + payload, sum(len(piece.sizes) for piece in pieces),
                  _edits_length(video_edits) / movie,
                  _edits_length(audio_edits) / movie if audio is not None else None)


def copy(joined: Joined, path_of: Callable[[int], str], out: BinaryIO,
         done_with: Callable[[int], None] = lambda source: None) -> None:
    """Write the joined file to out, front to back: its head, then each span read from
    path_of(file) (which may wait for that file to arrive). done_with(file) is called once
    the last of a file's spans is written."""
    last_span = {source: number for number, (source, _, _) in enumerate(joined.spans)}
    out.write(joined.head)
    opened: dict[int, int] = {}
    try:
        for number, (source, offset, size) in enumerate(joined.spans):
            if source not in opened:
                opened[source] = os.open(path_of(source), os.O_RDONLY)
            while size:
                block = os.pread(opened[source], min(size, COPY_BYTES), offset)
                if not block:
                    raise NotPlayable(f"a file to join ends before byte {offset + size}")
                out.write(block)
                offset, size = offset + len(block), size - len(block)
            if last_span[source] == number:
                os.close(opened.pop(source))
                done_with(source)
    finally:
        for descriptor in opened.values():
            os.close(descriptor)


def write(joined: Joined, paths: list[str], out_path: str) -> None:
    """The joined file written to out_path from the files it joins (the pieces', then the audio's)."""
    with open(out_path, "wb") as out:
        copy(joined, paths.__getitem__, out)


# --- reading the tables -------------------------------------------------------------------

def _entries(data: bytes, table: tuple[int, int], fields: str) -> list[tuple]:
    body, end = table
    count = boxes.u32(data, body + 4)
    if body + 8 + count * struct.calcsize(">" + fields) > end:
        raise Unsupported("a sample table of a file to join is cut short")
    flat = struct.unpack_from(">" + fields * count, data, body + 8)
    return list(zip(*[iter(flat)] * len(fields)))


def _expanded(runs: list[tuple[int, int]]) -> list[int]:
    return [value for count, value in runs for _ in range(count)]


def _sample_sizes(data: bytes, table: tuple[int, int]) -> list[int]:
    body, end = table
    size, count = struct.unpack_from(">II", data, body + 4)
    if size:
        return [size] * count
    if body + 12 + 4 * count > end:
        raise Unsupported("the sample sizes of a file to join are cut short")
    return list(struct.unpack_from(f">{count}I", data, body + 12))


def _positions(data: bytes, tables: dict, sizes: list[int]) -> list[int]:
    chunk_offsets = ([offset for (offset,) in _entries(data, tables["co64"], "Q")] if "co64" in tables
                     else [offset for (offset,) in _entries(data, tables["stco"], "I")])
    runs = _entries(data, tables["stsc"], "III")
    if any(description != 1 for _, _, description in runs):
        raise Unsupported("a file to join has more than one sample description")
    positions, sample = [], 0
    for number, offset in enumerate(chunk_offsets, start=1):
        per_chunk = next((count for first, count, _ in reversed(runs) if first <= number), 0)
        for _ in range(per_chunk):
            if sample == len(sizes):
                break
            positions.append(offset)
            offset += sizes[sample]
            sample += 1
    if sample != len(sizes):
        raise Unsupported("the chunks of a file to join do not hold all its samples")
    return positions


def _without_bitrate(stsd: bytes) -> bytes:
    """A video sample description without its btrt: the encoder writes each piece's own
    bit rates there (the rest is the same for every piece), and the box is optional."""
    kind, body, end = boxes.box_at(stsd, 16)  # after the version, flags and entry count
    inside = boxes.children(stsd, body + _VISUAL_FIELDS, end)
    entry = boxes.box(kind, stsd[body:body + _VISUAL_FIELDS] + b"".join(
        stsd[start:box_end] for kind, start, _, box_end in inside if kind != "btrt"))
    return boxes.box("stsd", stsd[8:16] + entry + stsd[end:])


def _edits(data: bytes, elst: tuple[int, int] | None, movie: int, scale: int,
           media_length: int) -> tuple[int, list[tuple[int, int]]]:
    if elst is None:
        return 0, [(round(media_length * movie / scale), 0)]
    wide = data[elst[0]] == 1
    entries = _entries(data, elst, "Qqhh" if wide else "Iihh")
    starts_at, edits = 0, []
    for duration, media_time, rate, fraction in entries:
        if media_time == _EMPTY and not edits:
            starts_at += duration
        elif media_time == _EMPTY or (rate, fraction) != (1, 0):
            raise Unsupported("a file to join has an edit list other than a delay and its media")
        else:
            edits.append((duration, media_time))
    if not edits:
        raise Unsupported("a file to join shows none of its media")
    return starts_at, edits


# --- the chunks ---------------------------------------------------------------------------

def _video_chunks(pieces: list[Track], durations: list[list[int]], decode_starts: list[int],
                  shift: float) -> list[tuple]:
    return [chunk for number, (piece, own, start) in enumerate(zip(pieces, durations, decode_starts))
            for chunk in _chunks(number, piece, own, start, shift, 0)]


def _chunks(source: int, track: Track, durations: list[int], decode_start: int, shift: float,
            kind: int) -> list[tuple]:
    """(time in seconds, kind (0 video, 1 audio), source, offset, samples, bytes) of each
    run of samples that lie side by side in the file and last about CHUNK_SECONDS at most.
    `shift`: seconds from the joined file's start to the track's decode time 0."""
    limit = CHUNK_SECONDS * track.timescale
    positions, sizes = track.positions, track.sizes
    chunks, start, first, span, length = [], decode_start, 0, 0, 0
    for sample, duration in enumerate(durations):
        apart = positions[sample] != positions[sample - 1] + sizes[sample - 1]
        if sample > first and (span >= limit or apart):
            chunks.append((shift + start / track.timescale, kind, source, positions[first],
                           sample - first, length))
            start, first, span, length = start + span, sample, 0, 0
        span += duration
        length += sizes[sample]
    chunks.append((shift + start / track.timescale, kind, source, positions[first], len(durations) - first,
                   length))
    return chunks


# --- writing the tracks -------------------------------------------------------------------

def _video_trak(pieces: list[Track], durations: list[list[int]], edits: list[tuple[int, int]],
                samples_per_chunk: list[int], chunk_offsets: list[int], wide: bool) -> bytes:
    first = pieces[0]
    all_durations = [duration for own in durations for duration in own]
    counts = [len(piece.sizes) for piece in pieces]
    before = list(itertools.accumulate(counts, initial=0))
    tables = [first.stsd, _full("stts", 0, _runs(all_durations), "II")]
    if any(piece.syncs is not None for piece in pieces):
        syncs = [number + skipped for piece, skipped in zip(pieces, before)
                 for number in (piece.syncs if piece.syncs is not None else range(1, len(piece.sizes) + 1))]
        tables.append(_full("stss", 0, [(number,) for number in syncs], "I"))
    if any(piece.composition_offsets is not None for piece in pieces):
        offsets = [offset for piece in pieces
                   for offset in (piece.composition_offsets or [0] * len(piece.sizes))]
        signed = min(offsets) < 0
        tables.append(_full("ctts", 1 if signed else 0, _runs(offsets), "Ii" if signed else "II"))
    tables += _chunk_tables(samples_per_chunk, chunk_offsets, wide)
    sizes = [size for piece in pieces for size in piece.sizes]
    stsz = boxes.box("stsz", struct.pack(f">III{len(sizes)}I", 0, 0, len(sizes), *sizes))
    tables.insert(len(tables) - 1, stsz)  # before the chunk offsets, as ffmpeg orders them
    return _trak(first, 1, edits, sum(all_durations), boxes.box("stbl", b"".join(tables)))


def _audio_trak(audio: Track, edits: list[tuple[int, int]], samples_per_chunk: list[int],
                chunk_offsets: list[int], wide: bool) -> bytes:
    stsc, stco = _chunk_tables(samples_per_chunk, chunk_offsets, wide)
    _, body, end = boxes.box_at(audio.trak, 0)
    stbl = boxes.child(audio.trak, body, end, "mdia/minf/stbl")
    kept = []
    for kind, start, _, box_end in boxes.children(audio.trak, *stbl):
        if kind == "stsc":
            kept.append(stsc)
        elif kind in ("stco", "co64"):
            kept.append(stco)
        else:
            kept.append(audio.trak[start:box_end])
    return _trak(audio, 2, edits, sum(audio.durations), boxes.box("stbl", b"".join(kept)))


def _chunk_tables(samples_per_chunk: list[int], chunk_offsets: list[int], wide: bool) -> list[bytes]:
    runs = [(number, count, 1) for number, count in enumerate(samples_per_chunk, start=1)
            if number == 1 or samples_per_chunk[number - 2] != count]
    stsc = _full("stsc", 0, runs, "III")
    if wide:
        return [stsc, _full("co64", 0, [(offset,) for offset in chunk_offsets], "Q")]
    return [stsc, _full("stco", 0, [(offset,) for offset in chunk_offsets], "I")]


def _trak(model: Track, track_id: int, edits: list[tuple[int, int]], media_length: int, stbl: bytes) -> bytes:
    """model's trak with a new track ID, edit list, media duration and sample table."""
    trak = model.trak
    _, body, end = boxes.box_at(trak, 0)
    wide = any(duration >= 1 << 32 or abs(time) >= 1 << 31 for duration, time in edits)
    elst = _full("elst", 1 if wide else 0, [(duration, time, 1, 0) for duration, time in edits],
                 "Qqhh" if wide else "Iihh")
    parts = []
    for kind, start, _, box_end in boxes.children(trak, body, end):
        box = trak[start:box_end]
        if kind == "tkhd":
            tkhd = boxes.with_duration(box, _edits_length(edits), 2)
            at = boxes.after_times(tkhd, 8)  # the track ID
            parts += [tkhd[:at] + struct.pack(">I", track_id) + tkhd[at + 4:], boxes.box("edts", elst)]
        elif kind == "mdia":
            parts.append(boxes.rewritten(box, {"mdhd": lambda b: boxes.with_duration(b, media_length, 1),
                                               "stbl": lambda _: stbl}))
        elif kind != "edts":
            parts.append(box)
    return boxes.box("trak", b"".join(parts))


def _full(kind: str, version: int, entries: list[tuple], fields: str) -> bytes:
    flat = [value for entry in entries for value in entry]
    return boxes.box(kind, struct.pack(f">II{fields * len(entries)}", version << 24, len(entries), *flat))


def _runs(values: list[int]) -> list[tuple[int, int]]:
    return [(len(list(group)), value) for value, group in itertools.groupby(values)]


def _edits_length(edits: list[tuple[int, int]]) -> int:
    return sum(duration for duration, _ in edits)
