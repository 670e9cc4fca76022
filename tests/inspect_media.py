"""Structure checks for tests: what makes a joined file seekable, read from its top-level
elements (Matroska Cues, MP4 box order)."""
import struct
from typing import BinaryIO

from chalicelib.media import ebml, matroska


def _read_ebml_element(stream: BinaryIO) -> tuple[int, int | None, int] | None:
    """(id, data size or None if unknown, data start) of the element at the stream's
    position, or None at the end of the file."""
    start = stream.tell()
    head = stream.read(12)
    if len(head) < 2:
        return None
    element, size, data_start = ebml.element_at(head, 0)
    return element, size, start + data_start


def matroska_has_cues(stream: BinaryIO) -> bool:
    """Whether a Matroska/WebM file's Segment holds a Cues index (what makes it seekable)."""
    stream.seek(0)
    header = _read_ebml_element(stream)
    if header is None or header[0] != matroska.EBML:
        return False
    stream.seek(header[2] + (header[1] or 0))
    segment = _read_ebml_element(stream)
    if segment is None or segment[0] != matroska.SEGMENT:
        return False
    position = segment[2]
    while True:
        stream.seek(position)
        child = _read_ebml_element(stream)
        if child is None:
            return False
        element, size, data_start = child
        if element == matroska.CUES:
            return True
        if size is None:  # a live-written element of unknown size: no index can follow
            return False
        position = data_start + size


def mp4_top_level_boxes(stream: BinaryIO) -> list[str]:
    """The names of an MP4 file's top-level boxes, in order ("ftyp", "moov", "mdat"...)."""
    stream.seek(0)
    names = []
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return names
        size = int.from_bytes(header[:4], "big")
        names.append(header[4:8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(stream.read(8), "big")
            stream.seek(size - 16, 1)
        elif size == 0:
            return names
        else:
            stream.seek(size - 8, 1)


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, body start, end) of each box in data[start:end]: a file's top level by default."""
    end = len(data) if end is None else end
    boxes = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        body = start + 8
        if size == 1:
            size, body = struct.unpack_from(">Q", data, start + 8)[0], start + 16
        elif size == 0:
            size = end - start
        boxes.append((kind.decode("latin-1"), body, start + size))
        start += size
    return boxes


def _mp4_box(data: bytes, path: str, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """(body start, end) of the first box along a path such as "moov/mvex/mehd"."""
    for name in path.split("/"):
        start, end = next((b, e) for kind, b, e in mp4_boxes(data, start, end) if kind == name)
    return start, end


def _header_duration(data: bytes, body: int, fields_before: int) -> int:
    """The duration of an mvhd (fields_before 1), tkhd (2) or mdhd (1), either version."""
    wide = data[body] == 1
    at = body + 4 + (16 if wide else 8) + 4 * fields_before
    return struct.unpack_from(">Q" if wide else ">I", data, at)[0]


def mp4_durations(data: bytes) -> dict:
    """A fragmented MP4's durations as its moov states them: the mvhd's and mehd's (movie
    timescale) and per track ID the tkhd's, and the mdhd's with its timescale."""
    mvhd, _ = _mp4_box(data, "moov/mvhd")
    wide = data[mvhd] == 1
    mehd, _ = _mp4_box(data, "moov/mvex/mehd")
    result = {"movie_timescale": struct.unpack_from(">I", data, mvhd + (20 if wide else 12))[0],
              "movie": _header_duration(data, mvhd, 1),
              "mehd": struct.unpack_from(">Q" if data[mehd] == 1 else ">I", data, mehd + 4)[0],
              "tracks": {}}
    moov = _mp4_box(data, "moov")
    for kind, body, end in mp4_boxes(data, *moov):
        if kind != "trak":
            continue
        tkhd, _ = _mp4_box(data, "tkhd", body, end)
        mdhd, _ = _mp4_box(data, "mdia/mdhd", body, end)
        track_id = struct.unpack_from(">I", data, tkhd + (20 if data[tkhd] == 1 else 12))[0]
        result["tracks"][track_id] = {
            "tkhd": _header_duration(data, tkhd, 2), "mdhd": _header_duration(data, mdhd, 1),
            "timescale": struct.unpack_from(">I", data, mdhd + (20 if data[mdhd] == 1 else 12))[0]}
    return result


def mp4_sidx(data: bytes) -> dict:
    """The top-level sidx of an MP4 file: its fields, where the bytes it indexes start
    (`first_byte`), and each reference as (size, duration, starts_with_SAP, SAP_type)."""
    body, end = _mp4_box(data, "sidx")
    version = data[body]
    reference_id, timescale = struct.unpack_from(">II", data, body + 4)
    earliest, first_offset = struct.unpack_from(">QQ" if version else ">II", data, body + 12)
    at = body + (28 if version else 20)
    count = struct.unpack_from(">H", data, at + 2)[0]
    references = []
    for i in range(count):
        size, duration, sap = struct.unpack_from(">III", data, at + 4 + 12 * i)
        assert not size >> 31, "a reference to another sidx"
        references.append((size, duration, sap >> 31, (sap >> 28) & 7))
    return {"reference_id": reference_id, "timescale": timescale, "earliest": earliest,
            "first_byte": end + first_offset, "references": references}


def mp4_chunks(path: str) -> list[tuple[int, str, float]]:
    """(byte offset, handler ("vide", "soun"), decode time in seconds of its first sample)
    of every chunk of a non-fragmented MP4, in file order: how its tracks interleave."""
    from chalicelib.media import mp4_boxes as boxes
    data = open(path, "rb").read()
    moov = next((body, end) for kind, _, body, end in boxes.children(data, 0, len(data)) if kind == "moov")
    found = []
    for kind, _, body, end in boxes.children(data, *moov):
        if kind != "trak":
            continue
        hdlr, mdhd = boxes.child(data, body, end, "mdia/hdlr"), boxes.child(data, body, end, "mdia/mdhd")
        handler = data[hdlr[0] + 8:hdlr[0] + 12].decode()
        scale = boxes.u32(data, boxes.after_times(data, mdhd[0]))
        stbl = boxes.child(data, body, end, "mdia/minf/stbl")
        tables = {name: start for name, _, start, _ in boxes.children(data, *stbl)}

        def entries(name: str, fields: str) -> list[tuple]:
            count = boxes.u32(data, tables[name] + 4)
            flat = struct.unpack_from(">" + fields * count, data, tables[name] + 8)
            return list(zip(*[iter(flat)] * len(fields)))
        durations = [delta for count, delta in entries("stts", "II") for _ in range(count)]
        offsets = [offset for (offset,) in (entries("co64", "Q") if "co64" in tables else entries("stco", "I"))]
        runs = entries("stsc", "III")
        sample, time = 0, 0
        for number, offset in enumerate(offsets, start=1):
            found.append((offset, handler, time / scale))
            per_chunk = next(count for first, count, _ in reversed(runs) if first <= number)
            time += sum(durations[sample:sample + per_chunk])
            sample += per_chunk
    return sorted(found)
