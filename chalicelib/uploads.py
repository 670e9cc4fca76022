"""What an append's request holds: the chunk's bytes, whatever the Content-Type says, and
where the client says they go.

Browsers and scripts send chunks as raw bodies (video/webm, application/octet-stream, curl's
application/x-www-form-urlencoded, or no type at all) or as multipart/form-data with one file
field (FormData). The media type is sniffed from the bytes later; the header is not trusted.
A body that ended early (shorter than its Content-Length, a form without its closing
boundary) is refused whole: a chunk is stored complete or not at all.
"""
import base64
import binascii
import email.errors
import email.parser
import email.policy
import hashlib
import re
from dataclasses import dataclass

from chalicelib.errors import ChunkTooLarge, DigestMismatch, InvalidRange, InvalidUpload, shown

MULTIPART = "multipart/form-data"

# Every type an append accepts. On API Gateway each must also be a binary media type, or
# the body reaches Lambda as text and binary data is corrupted (see app.py).
CHUNK_CONTENT_TYPES = [
    "application/octet-stream", "application/x-www-form-urlencoded", MULTIPART,
    "video/webm", "video/mp4", "video/x-matroska", "video/quicktime", "video/ogg",
    "audio/webm", "audio/mp4", "audio/ogg", "audio/x-matroska",
    # A request with no Content-Type is read as application/json by Chalice.
    "application/json", "text/plain",
]

# The form fields and boundaries around a file are small; anything more is not one chunk.
_MULTIPART_OVERHEAD = 64 * 1024


def _limit_error(limit: int) -> ChunkTooLarge:
    return ChunkTooLarge(
        f"a chunk may be at most {limit} bytes; send smaller chunks "
        "(MediaRecorder.start(timeslice) with a shorter timeslice)", limit_bytes=limit)


def check_delivered_as_bytes(event: dict) -> None:
    """API Gateway hands Lambda a body whose Content-Type is not one of the API's binary
    media types (a request with none counts as application/json) as text, every byte that is
    not UTF-8 already replaced: a media chunk delivered so is damaged, and is refused before
    anything is stored. (chalice local and its test client hand over bytes either way.)"""
    if isinstance(event.get("body"), str) and event["body"] and not event.get("isBase64Encoded"):
        raise InvalidUpload("the chunk arrived as text, which damages binary data: send it with "
                            "a Content-Type such as application/octet-stream or video/webm; "
                            "nothing was stored")


def chunk_from_body(body: bytes, content_type: str | None, limit: int,
                    content_length: str | None = None) -> bytes:
    if content_length is not None and content_length.strip().isdigit() and len(body) < int(content_length):
        raise InvalidUpload(f"the body ended after {len(body)} of the {int(content_length)} bytes its "
                            "Content-Length announced; nothing was stored: send the chunk again")
    if len(body) > limit + _MULTIPART_OVERHEAD:
        raise _limit_error(limit)
    media_type = (content_type or "").split(";")[0].strip().lower()
    chunk = _file_from_multipart(body, content_type) if media_type == MULTIPART else body
    if not chunk:
        raise InvalidUpload("the chunk is empty: send the recorded bytes as the request body")
    if len(chunk) > limit:
        raise _limit_error(limit)
    return chunk


def _file_from_multipart(body: bytes, content_type: str) -> bytes:
    envelope = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(envelope)
    if not message.is_multipart():
        raise InvalidUpload("the multipart/form-data body could not be parsed (is the boundary right?)")
    if any(isinstance(defect, email.errors.CloseBoundaryNotFoundDefect) for defect in message.defects):
        raise InvalidUpload("the multipart/form-data body ends before its closing boundary; "
                            "nothing was stored: send the chunk again")
    parts = list(message.iter_parts())
    files = [part for part in parts if part.get_filename() is not None]
    if len(files) > 1:
        raise InvalidUpload(f"the form holds {len(files)} files; send one chunk per request")
    if not files and len(parts) != 1:
        raise InvalidUpload("the form holds no file field; append the chunk as a file (FormData)")
    return (files or parts)[0].get_payload(decode=True) or b""


@dataclass(frozen=True)
class ByteRange:
    """Where a chunk's bytes go in the recording's byte stream (Content-Range)."""
    first: int
    last: int
    total: int | None  # the recording's length, once the client knows it

    @property
    def size(self) -> int:
        return self.last - self.first + 1


_CONTENT_RANGE = re.compile(r"bytes (\d{1,15})-(\d{1,15})/(\d{1,15}|\*)")


def byte_range(header: str | None) -> ByteRange | None:
    """The Content-Range of an append (`bytes <first>-<last>/<total or *>`), or None."""
    if header is None or not header.strip():
        return None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise InvalidRange(f"Content-Range {shown(header)} is not 'bytes <first>-<last>/<total or *>'")
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        raise InvalidRange(f"Content-Range {shown(header)} is not a range of bytes of the recording")
    return ByteRange(first, last, total)


_SHA256 = re.compile(r"sha-256=:([^:]*):")


def check_digest(chunk: bytes, content_digest: str | None) -> None:
    """Refuse a chunk whose SHA-256 is not the one its Content-Digest (RFC 9530) states.
    Digests of other algorithms are ignored, as the RFC allows."""
    match = _SHA256.search(content_digest or "")
    if match is None:
        return
    try:
        stated = base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        raise DigestMismatch("the Content-Digest's sha-256 is not base64") from None
    if stated != hashlib.sha256(chunk).digest():
        raise DigestMismatch("the chunk's SHA-256 is not the one its Content-Digest states: "
                             "it was damaged on the way; nothing was stored, send it again")
