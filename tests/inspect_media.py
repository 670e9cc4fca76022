"""Structure checks for tests: what makes a joined file seekable, read from its top-level
elements (Matroska Cues, MP4 box order)."""
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
