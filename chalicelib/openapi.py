"""The API described in OpenAPI 3.1, served at `GET /openapi.json`: the one place it is written.

What the code already knows is taken from it, so the document cannot drift from it: the
status of each error from app.py's HTTP_STATUS table (passed in), the error codes from
`chalicelib.errors`, the accepted body types from each route's content_types, the status and
join method values from `chalicelib.models`, the append messages from `chalicelib.responses`.
The rest (which operation answers what) is written here; tests/unit/test_openapi.py validates
real answers of every route against it and fails on a route this module does not describe.
"""
import copy
import dataclasses
import functools
import json
import typing

from chalicelib import errors, observability
from chalicelib.models import JoinMethod, MediaSummary, RenditionState, Status
from chalicelib.responses import FIRST_CHUNK_MESSAGE, LATER_CHUNK_MESSAGE

OPENAPI_VERSION = "3.1.0"
ANY_CONTENT_TYPE = "*/*"
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"  # chalice's own 415, before any view runs

# The details an error carries beside Code and Message (VideoError(**details)).
ERROR_DETAILS = {
    errors.RangeConflict: {"committed_bytes": {"type": "integer", "minimum": 0,
                                               "description": "where the recording ends: resume there"}},
    errors.VideoFinalized: {"committed_bytes": {"type": "integer", "minimum": 0}},
    errors.ChunkTooLarge: {"limit_bytes": {"type": "integer", "minimum": 1}},
    errors.RenditionUnavailable: {"state": {
        "type": "string", "enum": ["failed", "too_long", "none"],
        "description": "the rendition's state (`none`: an audio-only recording gets none)"}},
}


def _ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


# --- bodies (chalicelib/responses.py) ------------------------------------------------

_COUNT = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}
_VIDEO_ID = {"type": "integer", "minimum": 1, "maximum": 10**15 - 1}
_TOKEN = {"type": "string", "minLength": 1}


def _json_type(hint) -> dict:
    """The JSON schema of a MediaSummary field (None is dropped by as_dict, never sent)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    hint = args[0] if args else hint
    if isinstance(hint, type) and issubclass(hint, JoinMethod):
        return {"type": "string", "enum": [m.value for m in JoinMethod]}
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[hint]}


def _media_properties() -> dict:
    # Derived from the dataclass: a field added to MediaSummary is documented with it.
    hints = typing.get_type_hints(MediaSummary)
    return {field.name: _json_type(hints[field.name]) for field in dataclasses.fields(MediaSummary)}


def _video_status_properties() -> dict:
    return {
        "video_id": _VIDEO_ID,
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "chunk_count": _COUNT, "bytes": _COUNT,
        "committed_bytes": {**_COUNT, "description": "where the next chunk starts"},
        "next_chunk_index": {**_COUNT, "description": "the index the next chunk gets"},
        "finalized": {"type": "boolean"},
        "created_at": _TIME, "updated_at": _TIME,
        # Once joined (the compiled object's chunk count, what it is, its poster):
        "compiled_chunk_count": _COUNT,
        **_media_properties(),
        "poster_url": {"type": ["string", "null"],
                       "description": "presigned; null for audio-only recordings"},
        "renditions": {
            "type": "array", "description": (
                "the H.264/AAC MP4 rendition of the compiled object (GET /get_video?format=mp4), "
                "once asked for; empty when none was (it plays everywhere as it is, or is "
                "audio only)"),
            "items": {
                "type": "object", "additionalProperties": False,
                "required": ["format", "state", "byte_size", "video_codec", "audio_codec"],
                "properties": {
                    "format": {"const": "mp4"},
                    "state": {"type": "string", "enum": [s.value for s in RenditionState]},
                    "byte_size": {"type": ["integer", "null"], "minimum": 1},
                    "video_codec": {"type": ["string", "null"]},
                    "audio_codec": {"type": ["string", "null"]},
                    "error": {"type": "string",
                              "description": "why it failed or is not made (failed, too_long)"},
                },
            },
        },
        "error": {"type": "string", "description": "why the join failed (status failed)"},
        "segments_declined": {"type": "string", "description": (
            "why the recording cannot be composed from the segments folded while it went on "
            "(join_method segments), so that its joins go through ffmpeg")},
    }


_VIDEO_STATUS_REQUIRED = ["video_id", "status", "chunk_count", "bytes", "committed_bytes",
                          "next_chunk_index", "finalized", "created_at", "updated_at"]


def _schemas(error_classes: list[type]) -> dict:
    details = {}
    for properties in ERROR_DETAILS.values():
        details.update(properties)
    return {
        "VideoStatus": {
            "type": "object", "additionalProperties": False,
            "required": _VIDEO_STATUS_REQUIRED, "properties": _video_status_properties(),
        },
        "Created": {
            "type": "object", "additionalProperties": False,
            "required": ["upload_token", "playback_token", *_VIDEO_STATUS_REQUIRED],
            "properties": {
                "upload_token": {**_TOKEN, "description": "append, finalize, delete; only in the "
                                 "Authorization header. Shown once: only its hash is stored."},
                "playback_token": {**_TOKEN, "description": "read-only; may go in a URL (?token=)"},
                **_video_status_properties(),
            },
        },
        "Appended": {
            "type": "object", "additionalProperties": False,
            "required": ["message", "video_id", "chunk_index", "bytes_received", "committed_bytes"],
            "properties": {
                "message": {"type": "string", "enum": [FIRST_CHUNK_MESSAGE, LATER_CHUNK_MESSAGE]},
                "video_id": _VIDEO_ID, "chunk_index": _COUNT,
                "bytes_received": {"type": "integer", "minimum": 1},
                "committed_bytes": {**_COUNT, "description": "where the next chunk starts"},
            },
        },
        "Piece": {
            "type": "object", "additionalProperties": False,
            "required": ["piece_id", "upload_url", "method", "first_byte", "max_bytes", "expires_in"],
            "properties": {
                "piece_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "upload_url": {"type": "string", "description": "presigned S3 URL: PUT the piece there"},
                "method": {"const": "PUT"},
                "first_byte": _COUNT, "max_bytes": {"type": "integer", "minimum": 1},
                "expires_in": {"type": "integer", "minimum": 1, "description": "seconds"},
            },
        },
        "PlaybackToken": {
            "type": "object", "additionalProperties": False,
            "required": ["video_id", "playback_token"],
            "properties": {"video_id": _VIDEO_ID, "playback_token": _TOKEN},
        },
        "Processing": {
            "type": "object", "additionalProperties": False, "required": ["status", "retry_after"],
            "properties": {"status": {"const": Status.PROCESSING.value},
                           "retry_after": {"type": "integer", "minimum": 1, "description": "seconds"}},
        },
        "Playback": {
            "type": "object", "additionalProperties": False, "required": ["url", "content_type"],
            "properties": {"url": {"type": "string"},
                           "content_type": {"type": ["string", "null"]}},
        },
        "Health": {
            "type": "object", "required": ["service", "status"],
            "properties": {"service": {"type": "string"}, "status": {"const": "ok"}},
        },
        "Error": {
            "type": "object", "additionalProperties": False, "required": ["Code", "Message"],
            "properties": {
                "Code": {"type": "string",
                         "enum": sorted({c.code for c in error_classes} | {UNSUPPORTED_MEDIA_TYPE})},
                "Message": {"type": "string"},
                **details,
            },
        },
    }


# --- parameters and headers ----------------------------------------------------------

_PARAMETERS = {
    "video_id": {"name": "video_id", "in": "path", "required": True, "schema": _VIDEO_ID,
                 "description": "a whole number from 1 up, as create_video answered it"},
    "piece_id": {"name": "piece_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                 "description": "as POST /videos/{video_id}/pieces answered it"},
    "CorrelationId": {
        "name": observability.CORRELATION_HEADER, "in": "header", "required": False,
        # Any value is taken (one that does not look like an id is replaced), so no pattern:
        # a fuzzer would expect the 4xx a pattern promises.
        "schema": {"type": "string"},
        "description": "an id to find this request in the logs (X-Request-Id is read too); one "
                       "that is not `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}` is replaced by the "
                       "gateway's request id"},
    "download": {
        "name": "download", "in": "query", "required": False,
        "schema": {"type": "string", "enum": ["1", "true"]},
        "description": "the Location is served as an attachment (`video-<id>.<ext>`): saved, "
                       "not played"},
    "format": {
        "name": "format", "in": "query", "required": False,
        "schema": {"type": "string", "enum": ["mp4"]},
        "description": "`mp4`: the H.264/AAC MP4 rendition, which plays everywhere (iOS Safari "
                       "included); the original itself when it already is H.264/AAC in MP4. "
                       "Without it, the video as recorded. Any other value is a 400."},
    "ContentRange": {
        "name": "Content-Range", "in": "header", "required": False,
        # No pattern: whether a range is one (first <= last < total) is more than a regex
        # says; any other value is a documented 416.
        "schema": {"type": "string"},
        "description": "`bytes <first>-<last>/<total or *>`: where the chunk goes in the recording; "
                       "it must start where the recording ends. Reaching `<total>` finalizes the "
                       "video. One that does not parse is a 416."},
    "ContentDigest": {
        "name": "Content-Digest", "in": "header", "required": False,
        "schema": {"type": "string"},
        "description": "RFC 9530, `sha-256=:<base64>:`: a chunk whose SHA-256 differs is refused "
                       "(400 DigestMismatch, nothing stored); other algorithms are ignored"},
}

# Each is sent on every answer it is documented for, hence required.
_HEADERS = {
    "CorrelationId": {"description": "the request's correlation id: quote it when asking about it",
                      "required": True, "schema": {"type": "string"}},
    "UploadOffset": {"description": "where the next chunk starts (the recording's committed bytes)",
                     "required": True, "schema": {"type": "string", "pattern": r"^\d+$"}},
    "RetryAfter": {"description": "seconds to wait before asking again",
                   "required": True, "schema": {"type": "string", "pattern": r"^\d+$"}},
    "Location": {"description": "the compiled video: a presigned S3 URL, signed on each request",
                 "required": True, "schema": {"type": "string"}},
}

_SECURITY_SCHEMES = {
    "uploadToken": {"type": "http", "scheme": "bearer",
                    "description": "`Authorization: Bearer <upload_token>` (create_video's "
                                   "answer): every call on a video. Never in a URL."},
    "playbackToken": {"type": "http", "scheme": "bearer",
                      "description": "`Authorization: Bearer <playback_token>`: the two reads only"},
    "playbackTokenQuery": {"type": "apiKey", "in": "query", "name": "token",
                           "description": "`?token=<playback_token>`, for `<video src>` and shared "
                                          "links; the upload token there is a 403"},
}

UPLOADER = [{"uploadToken": []}]
READER = [{"uploadToken": []}, {"playbackToken": []}]
PLAYER = [*READER, {"playbackTokenQuery": []}]

# Errors every call on a video may answer: a bad id, no token, another video's token, no
# such video, an AWS outage.
_ON_A_VIDEO = [errors.InvalidVideoId, errors.MissingToken, errors.WrongToken,
               errors.VideoNotFound, errors.StorageUnavailable]
_APPENDS = [errors.InvalidUpload, errors.RangeConflict, errors.VideoFinalized,
            errors.ChunkTooLarge, errors.InvalidRange]

# An empty chunk is a 400 InvalidUpload.
_CHUNK_BODY = {"type": "string", "format": "binary", "minLength": 1,
               "description": "the chunk's bytes, as recorded"}


# A response's headers are keyed by their HTTP name; the components by these names.
_HEADER_NAMES = {"CorrelationId": observability.CORRELATION_HEADER, "UploadOffset": "Upload-Offset",
                 "RetryAfter": "Retry-After", "Location": "Location"}


def _header(component: str) -> dict:
    return {_HEADER_NAMES[component]: _ref(component, "headers")}


def _json(schema_name: str, description: str, headers: tuple[str, ...] = ()) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": _ref(schema_name)}}}
    if headers:
        response["headers"] = {k: v for h in headers for k, v in _header(h).items()}
    return response


def _html(description: str) -> dict:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


# --- the operations: (path, method) -> what it takes and answers -----------------------
# Written in the canonical form chalice registers (no trailing slash); each path also
# answers with one, which the operation's description notes.

OPERATIONS = {
    ("/", "GET"): {
        "operationId": "recorder_page", "summary": "The recorder page (HTML)",
        "responses": {"200": _html("the browser recorder: records and streams chunks here")},
    },
    ("/health", "GET"): {
        "operationId": "health", "summary": "Health check",
        "responses": {"200": _json("Health", "the service answers")},
    },
    ("/watch/{video_id}", "GET"): {
        "operationId": "watch_page", "summary": "The share page of a video (HTML)",
        "description": "A page that plays the video; `?token=` is its playback token, which the "
                       "page passes on to GET /get_video.",
        "parameters": ["video_id"], "security": [{"playbackTokenQuery": []}],
        "responses": {"200": _html("the player page, or a page saying it is being processed")},
        # A person reads these: the errors are pages too, with the status of the JSON ones.
        "errors": [*_ON_A_VIDEO, errors.NotPlayable], "html_errors": True,
    },
    ("/watch/{video_id}/poster", "GET"): {
        "operationId": "watch_poster", "summary": "The video's poster (the share page's og:image)",
        "description": "A stable URL for the poster, whose presigned URL expires.",
        "parameters": ["video_id"], "security": [{"playbackTokenQuery": []}],
        "responses": {"302": {"description": "to the poster JPEG (presigned)",
                              "headers": _header("Location")}},
        "errors": _ON_A_VIDEO,
    },
    ("/openapi.json", "GET"): {
        "operationId": "openapi", "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    },
    ("/create_video", "POST"): {
        "operationId": "create_video", "summary": "Start a video",
        "description": "Ids count up from 1. Keep both tokens: only their hashes are stored.",
        "responses": {"201": _json("Created", "the new video, with its tokens")},
        "errors": [errors.StorageUnavailable],
    },
    ("/append_video/{video_id}", "POST"): {
        "operationId": "append_video", "summary": "Append the next chunk",
        "description": "The chunk committed last, sent again (a retry), gets the same answer and "
                       "is not stored twice. The media is sniffed from the bytes, never taken "
                       "from Content-Type. A body shorter than its `Content-Length` (the "
                       "connection broke) is a 400 InvalidUpload and nothing is stored.",
        "security": UPLOADER, "parameters": ["video_id", "ContentRange", "ContentDigest"],
        "body": "chunk",
        "responses": {"200": _json("Appended", "stored", ("UploadOffset",))},
        "errors": [*_ON_A_VIDEO, *_APPENDS, errors.DigestMismatch],
    },
    ("/get_video/{video_id}", "GET"): {
        "operationId": "get_video", "summary": "Play the video",
        "description": "A GET on a video whose chunks changed since the last join asks for one "
                       "and answers 202. With `?format=mp4`, a 202 also while the MP4 rendition "
                       "is being made (asked for if none is pending), and a 422 "
                       "RenditionUnavailable when it failed or the video is too long for one.",
        "security": PLAYER, "parameters": ["video_id", "download", "format"],
        "responses": {
            "302": _json("Playback", "to the compiled video, or its MP4 rendition (a `Range` "
                         "request to it gives 206)", ("Location",)),
            "202": _json("Processing", "being joined, or its rendition made: ask again after "
                         "Retry-After", ("RetryAfter",)),
        },
        "errors": [*_ON_A_VIDEO, errors.NoChunks, errors.NotPlayable, errors.UnsupportedFormat,
                   errors.RenditionUnavailable],
    },
    ("/videos/{video_id}", "GET"): {
        "operationId": "video_status", "summary": "The video's status",
        "security": READER, "parameters": ["video_id"],
        "responses": {"200": _json("VideoStatus", "the status")},
        "errors": _ON_A_VIDEO,
    },
    ("/videos/{video_id}", "DELETE"): {
        "operationId": "delete_video", "summary": "Delete the video and all its objects",
        "security": UPLOADER, "parameters": ["video_id"],
        "responses": {"204": {"description": "gone; later calls on it are 404"}},
        "errors": _ON_A_VIDEO,
    },
    ("/videos/{video_id}/pieces", "POST"): {
        "operationId": "start_piece", "summary": "Upload a large piece straight to S3",
        "description": "For a piece larger than a request body can carry (4.5 MB): PUT it to "
                       "`upload_url`, then commit it.",
        "security": UPLOADER, "parameters": ["video_id"],
        "responses": {"201": _json("Piece", "where to PUT the piece")},
        "errors": _ON_A_VIDEO,
    },
    ("/videos/{video_id}/pieces/{piece_id}/commit", "POST"): {
        "operationId": "commit_piece", "summary": "Commit an uploaded piece as the next chunk",
        "description": "As an append; committing the same piece again is a retry.",
        "security": UPLOADER, "parameters": ["video_id", "piece_id", "ContentRange"],
        "responses": {"200": _json("Appended", "stored", ("UploadOffset",))},
        "errors": [*_ON_A_VIDEO, *_APPENDS],
    },
    ("/videos/{video_id}/finalize", "POST"): {
        "operationId": "finalize_video", "summary": "No more chunks: join now",
        "security": UPLOADER, "parameters": ["video_id"],
        "responses": {"200": _json("VideoStatus", "the status; later appends are 409")},
        "errors": _ON_A_VIDEO,
    },
    ("/videos/{video_id}/playback_token", "POST"): {
        "operationId": "new_playback_token", "summary": "Replace the playback token",
        "description": "The old one stops working.",
        "security": UPLOADER, "parameters": ["video_id"],
        "responses": {"200": _json("PlaybackToken", "the new playback token")},
        "errors": _ON_A_VIDEO,
    },
}


def _request_body(content_types: list[str]) -> dict:
    content = {}
    for media_type in content_types:
        if media_type == "multipart/form-data":
            content[media_type] = {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": _CHUNK_BODY},
                "description": "FormData with one file field (any name)"}}
        else:
            content[media_type] = {"schema": _CHUNK_BODY}
    return {"required": True, "content": content,
            "description": "the raw chunk, or a form with one file; at most MAX_CHUNK_BYTES"}


def _errors_by_status(kinds: list[type], http_status: dict, takes_body: bool,
                      html: bool = False) -> dict:
    by_status: dict[int, list[str]] = {}
    for kind in kinds:
        status = next(code for error, code in http_status.items() if issubclass(kind, error))
        by_status.setdefault(status, []).append(kind.code)
    if takes_body:
        by_status.setdefault(415, []).append(UNSUPPORTED_MEDIA_TYPE)
    responses = {}
    for status, codes in sorted(by_status.items()):
        if html:
            response = _html(", ".join(codes))
        else:
            schema = {"allOf": [_ref("Error"), {"properties": {"Code": {"enum": codes}}}]}
            response = {"description": ", ".join(codes),
                        "content": {"application/json": {"schema": schema}}}
        headers = {}
        if status == 409:
            headers.update(_header("UploadOffset"))
        if any(c == errors.StorageUnavailable.code for c in codes):
            headers.update(_header("RetryAfter"))
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses


def _operation(path: str, method: str, spec: dict, content_types: list[str], http_status: dict) -> dict:
    # A route that checks the Content-Type (chalice answers 415 before the view) takes a body.
    checks_type = ANY_CONTENT_TYPE not in content_types
    operation = {"operationId": spec["operationId"], "summary": spec["summary"]}
    alias = f"Also at `{path}/`." if path != "/" else ""
    operation["description"] = " ".join(filter(None, [spec.get("description"), alias]))
    operation["parameters"] = [_ref(p, "parameters") for p in spec.get("parameters", [])]
    operation["parameters"].append(_ref("CorrelationId", "parameters"))
    if spec.get("body") == "chunk":
        operation["requestBody"] = _request_body(content_types)
    operation["security"] = spec.get("security", [])
    responses = copy.deepcopy(spec["responses"])  # OPERATIONS stays as written
    responses.update(_errors_by_status(spec.get("errors", []), http_status, checks_type,
                                       spec.get("html_errors", False)))
    for response in responses.values():
        response.setdefault("headers", {}).update(_header("CorrelationId"))
    operation["responses"] = responses
    return operation


def document(routes: dict, http_status: dict) -> dict:
    """The OpenAPI document of the routes a Chalice app has (app.routes: path -> {method:
    RouteEntry}), with error statuses from http_status (error class -> status). A route with
    no entry in OPERATIONS is left out, which the tests catch."""
    paths: dict[str, dict] = {}
    for path, methods in routes.items():
        for method, entry in methods.items():
            spec = OPERATIONS.get((path, method))
            if spec is not None:
                paths.setdefault(path, {})[method.lower()] = _operation(
                    path, method, spec, entry.content_types, http_status)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "video-management-api", "version": "1",
            "description": "Chunks of a browser recording in, one seekable video out. Every path "
                           "also answers with a trailing slash. CORS is open to every origin. "
                           "Paths are relative to the API's base URL (on API Gateway, its stage: "
                           "`https://<id>.execute-api.<region>.amazonaws.com/api`).",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(list(http_status)),
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


@functools.cache
def _cached_json(app, http_status: tuple) -> str:
    return json.dumps(document(app.routes, dict(http_status)))


def document_json(app, http_status: dict) -> str:
    """The document as JSON, built once per app (the routes do not change after import)."""
    return _cached_json(app, tuple(http_status.items()))
