"""The API's JSON bodies, shaped in one place from what the use cases return."""
import time

from chalicelib.errors import StorageUnavailable, VideoError
from chalicelib.models import Status, Video
from chalicelib.videos import Appended, Created, Piece, VideoView

FIRST_CHUNK_MESSAGE = "Video added successfully"
LATER_CHUNK_MESSAGE = "Video appended and joined successfully"


def video_body(view: VideoView) -> dict:
    """A video's status: counts and times; once joined, what the compiled object is."""
    video = view.video
    body = {
        "video_id": video.video_id, "status": view.status.value,
        "chunk_count": len(video.stored_chunk_indices()), "bytes": video.byte_count,
        # Where a client that lost track resumes: the next chunk's first byte and index.
        "committed_bytes": video.committed_bytes, "next_chunk_index": video.chunk_count,
        "finalized": video.finalized_at is not None,
        "created_at": _iso(video.created_at), "updated_at": _iso(video.updated_at),
    }
    if video.compiled_chunks is not None:
        body["compiled_chunk_count"] = video.compiled_chunks
        body.update(video.media.as_dict())
        body["poster_url"] = view.poster_url
        body["renditions"] = renditions_body(video)
    if video.segments_off is not None:
        # Why its joins read every chunk through ffmpeg instead of composing segments.
        body["segments_declined"] = video.segments_off
    if view.status is Status.FAILED:
        body["error"] = video.error
    return body


def renditions_body(video: Video) -> list[dict]:
    """The renditions of the compiled object as it is now: the MP4 one, once asked for."""
    rendition = video.current_rendition()
    if rendition is None:
        return []
    entry = {"format": "mp4", "state": rendition.state.value, "byte_size": rendition.byte_size,
             "video_codec": rendition.video_codec, "audio_codec": rendition.audio_codec}
    if rendition.error is not None:
        entry["error"] = rendition.error
    return [entry]


def created_body(created: Created) -> dict:
    return {"video_id": created.view.video.video_id, "upload_token": created.upload_token,
            "playback_token": created.playback_token, **video_body(created.view)}


def appended_body(appended: Appended) -> dict:
    # The messages are the contract the first clients were written against.
    return {"message": FIRST_CHUNK_MESSAGE if appended.chunk_index == 0 else LATER_CHUNK_MESSAGE,
            "video_id": appended.video_id, "chunk_index": appended.chunk_index,
            "bytes_received": appended.chunk_bytes, "committed_bytes": appended.committed_bytes}


def piece_body(piece: Piece) -> dict:
    return {"piece_id": piece.piece_id, "upload_url": piece.upload_url, "method": "PUT",
            "first_byte": piece.first_byte, "max_bytes": piece.max_bytes,
            "expires_in": piece.expires_in}


def playback_token_body(video_id: int, playback_token: str) -> dict:
    return {"video_id": video_id, "playback_token": playback_token}


def processing_body(retry_after_seconds: int) -> dict:
    return {"status": Status.PROCESSING.value, "retry_after": retry_after_seconds}


def playback_body(url: str, content_type: str | None) -> dict:
    return {"url": url, "content_type": content_type}


def error_body(error: VideoError) -> dict:
    return {"Code": error.code, "Message": error.message, **error.details}


def error_headers(error: VideoError, settings) -> dict:
    """Where to resume after a conflict (as tus's Upload-Offset); when to retry an outage."""
    headers = {}
    if "committed_bytes" in error.details:
        headers["Upload-Offset"] = str(error.details["committed_bytes"])
    if isinstance(error, StorageUnavailable):
        headers["Retry-After"] = str(settings.retry_after_seconds)
    return headers


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
