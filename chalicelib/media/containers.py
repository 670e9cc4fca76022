"""What the bytes are: the container a chunk starts with, read from its first bytes.

A chunk that starts with a header starts a file; any other continues the one before
(MediaRecorder cuts one stream at arbitrary bytes, and only its first piece has the header).
"""
from dataclasses import dataclass

from chalicelib.media import ebml

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = 0x4282
# Top-level MP4 boxes a file may start with.
_MP4_FIRST_BOXES = {b"ftyp", b"styp"}


@dataclass(frozen=True)
class Container:
    name: str  # "webm", "matroska" or "mp4": the ffmpeg muxer the join writes with
    extension: str
    content_type: str

    def content_type_for(self, has_video: bool) -> str:
        """An audio-only recording is served as audio/..., so players show no black frame."""
        return self.content_type if has_video else self.content_type.replace("video/", "audio/")


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
        _, size, pos = ebml.element_at(head, 0)
        end = min(len(head), pos + (size or 0))
        while pos < end:
            element, length, pos = ebml.element_at(head, pos)
            if length is None:
                break
            if element == _EBML_DOCTYPE:
                doctype = head[pos:pos + length].rstrip(b"\0")
                return WEBM if doctype == b"webm" else MATROSKA
            pos += length
    except (ebml.Incomplete, ebml.Unsupported):
        pass
    return WEBM
