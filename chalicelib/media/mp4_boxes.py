"""ISO base media (MP4) boxes: reading their headers and children, and writing them.

Shared by the readers and writers of MP4 heads (chalicelib.media.fmp4, chalicelib.media.mp4_join).
A box is a 32-bit size (1: a 64-bit size follows the type; 0: to the end of the file, not
accepted here), a four-letter type, then its body; a container's body is boxes.
"""
import struct

from chalicelib.media.ebml import Damaged, Incomplete, Unsupported


def box_at(data, pos: int, end: int | None = None) -> tuple[str, int, int]:
    """(type, body start, end) of the box at pos; Incomplete when its header is cut short."""
    end = len(data) if end is None else end
    if pos + 8 > end:
        raise Incomplete()
    size, kind = struct.unpack_from(">I4s", data, pos)
    kind, body = kind.decode("latin-1"), pos + 8
    if size == 1:  # a 64-bit size follows the type
        if pos + 16 > end:
            raise Incomplete()
        size, body = struct.unpack_from(">Q", data, pos + 8)[0], pos + 16
    elif size == 0:
        raise Unsupported(f"the MP4 has a {kind!r} box that runs to the end of the file")
    if size < body - pos:
        raise Damaged(f"a box at byte {pos} is smaller than its own header")
    return kind, body, pos + size


def children(data, start: int, end: int) -> list[tuple[str, int, int, int]]:
    """(type, start, body start, end) of each box inside the body data[start:end]."""
    found = []
    while start < end:
        try:
            kind, body, box_end = box_at(data, start, end)
        except Incomplete:
            box_end = end + 1
        if box_end > end:
            raise Damaged(f"a box inside another overruns it, at byte {start}")
        found.append((kind, start, body, box_end))
        start = box_end
    return found


def child(data, start: int, end: int, path: str) -> tuple[int, int] | None:
    """(body start, end) of the first box along a path like "mdia/mdhd", or None."""
    for name in path.split("/"):
        found = [(body, box_end) for kind, _, body, box_end in children(data, start, end) if kind == name]
        if not found:
            return None
        start, end = found[0]
    return start, end


def u32(data, pos: int) -> int:
    return struct.unpack_from(">I", data, pos)[0]


def after_times(data, body: int) -> int:
    """Where mvhd, tkhd and mdhd fields after the creation and modification times start."""
    return body + 4 + (16 if data[body] == 1 else 8)


def box(kind: str, body: bytes) -> bytes:
    if len(body) + 8 < 1 << 32:
        return struct.pack(">I4s", len(body) + 8, kind.encode("latin-1")) + body
    return struct.pack(">I4sQ", 1, kind.encode("latin-1"), len(body) + 16) + body


def with_duration(data: bytes, duration: int, fields_before: int) -> bytes:
    """An mvhd, tkhd or mdhd with a new duration, as version 1 when it needs 64 bits. Each
    has, after version and flags, two times, `fields_before` 32-bit fields (the timescale;
    tkhd: the track ID and a reserved field), then the duration."""
    kind, body, end = box_at(data, 0)
    width = 8 if data[body] == 1 else 4
    middle_at = body + 4 + 2 * width
    duration_at = middle_at + 4 * fields_before
    rest = data[duration_at + width:end]
    if width == 4 and duration < 1 << 32:
        return data[:duration_at] + struct.pack(">I", duration) + rest
    times = data[body + 4:middle_at]
    if width == 4:
        times = struct.pack(">QQ", *struct.unpack(">II", times))
    return box(kind, b"\x01" + data[body + 1:body + 4] + times + data[middle_at:duration_at]
               + struct.pack(">Q", duration) + rest)


def rewritten(data: bytes, edits: dict) -> bytes:
    """A box with the boxes named in edits replaced by what their function makes of them,
    the containers above them resized, and every other byte as it was."""
    kind, body, end = box_at(data, 0)
    if kind in edits:
        return edits[kind](data)
    if kind not in ("moov", "trak", "mdia", "minf"):
        return data
    return box(kind, b"".join(rewritten(data[start:box_end], edits)
                              for _, start, _, box_end in children(data, body, end)))
