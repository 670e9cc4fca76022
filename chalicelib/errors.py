"""The service's exceptions. They say what went wrong in domain terms; `app.py` alone maps
them to HTTP status codes."""


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


class NotPlayable(VideoError):
    """The stored chunks do not make a playable video; they stay stored."""

    code = "NotPlayable"


class StorageUnavailable(VideoError):
    """S3 or DynamoDB did not take a write; nothing was recorded, the client may retry."""

    code = "StorageUnavailable"
