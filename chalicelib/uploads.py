"""What an append's request body holds: the chunk's bytes, whatever the Content-Type says.

Browsers and scripts send chunks as raw bodies (video/webm, application/octet-stream, curl's
application/x-www-form-urlencoded, or no type at all) or as multipart/form-data with one file
field (FormData). The media type is sniffed from the bytes later; the header is not trusted.
"""
import email.parser
import email.policy

from chalicelib.errors import ChunkTooLarge, InvalidUpload

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


def chunk_from_body(body: bytes, content_type: str | None, limit: int) -> bytes:
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
    parts = list(message.iter_parts())
    files = [part for part in parts if part.get_filename() is not None]
    if len(files) > 1:
        raise InvalidUpload(f"the form holds {len(files)} files; send one chunk per request")
    if not files and len(parts) != 1:
        raise InvalidUpload("the form holds no file field; append the chunk as a file (FormData)")
    return (files or parts)[0].get_payload(decode=True) or b""
