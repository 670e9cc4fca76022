"""What the bytes are: container sniffing and the few structure checks ffmpeg does not report.

Reads only headers (a chunk's first bytes, or the top-level elements of a file), never the
media itself.
"""
from dataclasses import dataclass
from typing import BinaryIO

from chalicelib import matroska

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = 0x4282
# Top-level MP4 boxes a file may start with.
_MP4_FIRST_BOXES = {b"ftyp", b"styp"}


@dataclass(frozen=True)
class Container:
    name: str  # "webm", "matroska" or "mp4": the ffmpeg muxer the join writes with
    extension: str
    content_type: str


WEBM = Container("webm", "webm", "video/webm")
MATROSKA = Container("matroska", "mkv", "video/x-matroska")
MP4 = Container("mp4", "mp4", "video/mp4")

# Enough bytes to read an EBML header's DocType or an MP4 ftyp box.
SNIFF_BYTES = 64


def sniff(head: bytes) -> Container | None:
    """The container a chunk starts with, or None when it does not start with a header
    (a later piece of a MediaRecorder stream, or something that is not media)."""
    if head.startswith(EBML_MAGIC):
        return _ebml_container(head)
    if len(head) >= 8 and head[4:8] in _MP4_FIRST_BOXES:
        return MP4
    return None


def _ebml_container(head: bytes) -> Container:
    # A header cut short (a 1-byte first chunk, say) still is a header; its DocType is
    # usually "webm" (Chromium writes webm unless the codecs need matroska).
    try:
        _, size, pos = matroska.element_at(head, 0)
        end = min(len(head), pos + (size or 0))
        while pos < end:
            element, length, pos = matroska.element_at(head, pos)
            if length is None:
                break
            if element == _EBML_DOCTYPE:
                doctype = head[pos:pos + length].rstrip(b"\0")
                return WEBM if doctype == b"webm" else MATROSKA
            pos += length
    except (matroska.Incomplete, matroska.Unsupported):
        pass
    return WEBM


def _read_ebml_element(stream: BinaryIO) -> tuple[int, int | None, int] | None:
    """(id, data size or None if unknown, data start) of the element at the stream's
    position, or None at the end of the file."""
    start = stream.tell()
    head = stream.read(12)
    if len(head) < 2:
        return None
    element, size, data_start = matroska.element_at(head, 0)
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
