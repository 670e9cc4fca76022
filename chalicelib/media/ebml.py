"""EBML, the binary format under Matroska and WebM: element headers read and written.

An element is an ID (a variable-length integer that keeps its length marker), a size (a
variable-length integer; all value bits set means "unknown", as a live stream writes its
Segment and Chromium its Clusters) and that many bytes of body.
"""

UNKNOWN_SIZE = 0x01FFFFFFFFFFFFFF  # an 8-byte size with every value bit set


class Incomplete(Exception):
    """The bytes end inside the element being read: more chunks are needed."""


class Unsupported(Exception):
    """A structure the copying join does not handle; the message says which."""


class Damaged(Unsupported):
    """Bytes that cannot be what a recorder wrote: a piece is missing, doubled or out of
    order. Unlike a structure that is merely unusual, this fails the join."""


def _vint(data, pos: int, keep_marker: bool) -> tuple[int, int]:
    if pos >= len(data):
        raise Incomplete()
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise Damaged(f"invalid EBML number at byte {pos}")
    if pos + length > len(data):
        raise Incomplete()
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1:pos + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        value = -1  # "unknown size"
    return value, pos + length


def element_at(data, pos: int) -> tuple[int, int | None, int]:
    """(id, data size or None when unknown, data start) of the element at pos."""
    element, pos = _vint(data, pos, keep_marker=True)
    size, pos = _vint(data, pos, keep_marker=False)
    return element, (None if size < 0 else size), pos


def track_number(body) -> tuple[int, int]:
    """The track number a Block or SimpleBlock body starts with, and where it ends."""
    return _vint(body, 0, keep_marker=False)


def children(body) -> list[tuple[int, bytes]]:
    """The child elements of a master element's body, each (id, body)."""
    found, pos = [], 0
    while pos < len(body):
        try:
            element, size, start = element_at(body, pos)
        except Incomplete:
            raise Unsupported("an element of the head is cut short") from None
        if size is None or start + size > len(body):
            raise Unsupported("an element of the head is cut short")
        found.append((element, bytes(body[start:start + size])))
        pos = start + size
    return found


def uint(body: bytes) -> int:
    return int.from_bytes(body, "big") if body else 0


def id_bytes(element: int) -> bytes:
    return element.to_bytes((element.bit_length() + 7) // 8, "big")


def size_bytes(value: int, width: int | None = None) -> bytes:
    length = width or next(n for n in range(1, 9) if value < (1 << (7 * n)) - 1)
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def element(element_id: int, body: bytes) -> bytes:
    return id_bytes(element_id) + size_bytes(len(body)) + body


def fixed_uint(element_id: int, value: int) -> bytes:
    # Eight bytes whatever the value, so an element's length is known before its value.
    return element(element_id, value.to_bytes(8, "big"))
