"""The service's exceptions. They say what went wrong in domain terms; `app.py` alone maps
the client-facing ones (VideoError) to HTTP status codes. The adapters raise these, never
a botocore exception, so nothing above them knows which cloud answered."""


# A value a client sent is echoed in an error at most this long: enough to recognise it.
_SHOWN_CHARACTERS = 40


def shown(value: str) -> str:
    """A client's value as an error message quotes it: cut short, so a 10 KB id is not
    sent back whole."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + "...'"


class VideoError(Exception):
    """Base of every error a client can cause or must be told about."""

    code = "VideoError"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidVideoId(VideoError):
    code = "InvalidVideoId"


class VideoNotFound(VideoError):
    code = "VideoNotFound"


class MissingToken(VideoError):
    code = "MissingToken"


class WrongToken(VideoError):
    code = "WrongToken"


class InvalidUpload(VideoError):
    """The request body is not one chunk we can store (empty, or a bad multipart form)."""

    code = "InvalidUpload"


class ChunkTooLarge(VideoError):
    code = "ChunkTooLarge"


class NoChunks(VideoError):
    code = "NoChunks"


class InvalidRange(VideoError):
    """A Content-Range header that does not parse."""

    code = "InvalidRange"


class RangeConflict(VideoError):
    """The chunk does not start where the recording ends, or its bytes differ from the chunk
    committed at that range. The details say where the recording ends (committed_bytes)."""

    code = "RangeConflict"


class DigestMismatch(VideoError):
    code = "DigestMismatch"


class VideoFinalized(VideoError):
    code = "VideoFinalized"


class NotPlayable(VideoError):
    """The stored chunks do not make a playable video; they stay stored."""

    code = "NotPlayable"


class UnsupportedFormat(VideoError):
    """A `?format=` that is not one the API makes (`mp4`)."""

    code = "UnsupportedFormat"


class RenditionUnavailable(VideoError):
    """The MP4 rendition asked for cannot be had: it failed, the video is too long for one,
    or the recording has no video. The original (no ?format) still plays."""

    code = "RenditionUnavailable"


class StorageUnavailable(VideoError):
    """S3, DynamoDB or SQS did not answer or refused a call; nothing was recorded by it, and
    the client may retry. The message names the kind of failure, never an endpoint or key."""

    code = "StorageUnavailable"


# --- inside the service: never reach a client ---------------------------------------

class ConditionFailed(Exception):
    """A catalog record is missing, or not in the state a conditional write required.
    `current` is the record as the write found it, where the write reports it."""

    def __init__(self, video_id: int, current=None):
        super().__init__(video_id)
        self.current = current


class ChunkMissing(Exception):
    """A chunk the catalog counts is not in the store yet: its append is still in flight."""

    def __init__(self, index: int):
        super().__init__(f"chunk {index} is not stored")
        self.index = index


class HandedOff(Exception):
    """The join handed its work to steps of its own (chalicelib.reencodes): it ends here,
    its lease kept by the steps, and it is asked for again when they are done."""


class FoldSuperseded(Exception):
    """Another job committed the segment this fold was about to commit: read the record
    again and go on from there."""


class UploadGone(Exception):
    """A multipart upload that was being added to is no more: completed by a join, aborted
    after a failure, or by the bucket's lifecycle rule. Start another."""
