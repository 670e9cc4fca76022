"""The video-chunk API: routes only. Each parses the request, calls one use case of
`chalicelib.videos`, and shapes the response with `chalicelib.responses`; the service's
errors become JSON through the one table below."""
import functools

from chalice import Chalice, CORSConfig, Rate, Response

from chalicelib import errors, observability, openapi, pages, responses, wiring
from chalicelib.join_messages import join_batch
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.tokens import bearer_token
from chalicelib.uploads import (
    CHUNK_CONTENT_TYPES,
    byte_range,
    check_delivered_as_bytes,
    check_digest,
    chunk_from_body,
)
from chalicelib.videos import parse_format, parse_piece_id, parse_video_id

# configure_logs=False: chalice's own handler on the app's logger (the one powertools
# formats) would print every line twice, once as plain text without the correlation id.
app = Chalice(app_name="video-management-api", configure_logs=False)
observability.install(app)  # JSON logs with correlation ids; metrics flushed per invocation

# API Gateway passes a body through untouched only when its Content-Type is a binary media
# type; any other arrives as text and binary chunks are corrupted. So every type an append
# accepts is declared binary (chalice deploys this list as the API's binaryMediaTypes).
app.api.binary_types = sorted(set(app.api.binary_types) | (set(CHUNK_CONTENT_TYPES) - {"application/json"}))
app.api.cors = CORSConfig(
    allow_origin="*",
    allow_headers=["Authorization", "Content-Type", "Content-Range", "Content-Digest",
                   observability.CORRELATION_HEADER],
    expose_headers=["Location", "Retry-After", "Upload-Offset", observability.CORRELATION_HEADER],
    max_age=600,
)

# A GET has no body; a Content-Type header a client sends anyway is no reason for a 415.
ANY_CONTENT_TYPE = ["*/*"]

HTTP_STATUS = {
    errors.InvalidVideoId: 400,
    errors.InvalidUpload: 400,
    errors.DigestMismatch: 400,
    errors.NoChunks: 400,
    errors.UnsupportedFormat: 400,
    errors.MissingToken: 401,
    errors.WrongToken: 403,
    errors.VideoNotFound: 404,
    errors.RangeConflict: 409,
    errors.VideoFinalized: 409,
    errors.ChunkTooLarge: 413,
    errors.InvalidRange: 416,
    errors.NotPlayable: 422,
    errors.RenditionUnavailable: 422,
    errors.StorageUnavailable: 503,
}


@functools.lru_cache(maxsize=None)
def services() -> wiring.Services:
    """Built at the first request, not at import: nothing AWS exists before it is used."""
    return wiring.build(get_settings())


def _http_status(error: errors.VideoError) -> int:
    return next(code for kind, code in HTTP_STATUS.items() if isinstance(error, kind))


def api_route(path: str, **options):
    """app.route, with the service's errors answered as JSON (an AWS service that does not
    answer is a StorageUnavailable from the adapters: a 503 the client may retry)."""
    def register(view):
        @functools.wraps(view)
        def handle(**arguments):
            try:
                return view(**arguments)
            except errors.VideoError as error:
                if isinstance(error, errors.StorageUnavailable):
                    logger.exception("an AWS call failed")
                return Response(responses.error_body(error), status_code=_http_status(error),
                                headers=responses.error_headers(error, get_settings()))
        return app.route(path, **options)(handle)
    return register


def _token() -> str | None:
    """The token of the Authorization header."""
    return bearer_token(app.current_request.headers.get("authorization"))


def _url_token() -> str | None:
    """`?token=`, for players that cannot send a header (`<video src>`): the playback token."""
    return (app.current_request.query_params or {}).get("token")


# --- The pages: the recorder at the root, the share page of a video; health as JSON. ---
# HTML for a person (errors too, as pages); the JSON API stays JSON.

def _html(page: pages.Page) -> Response:
    return Response(page.body, status_code=page.status, headers=page.headers)


def _site_base(route_start: str) -> str:
    """The API's public root URL, stage path included, for absolute links (Open Graph)."""
    request = app.current_request
    return pages.site_base(request.headers.get("host"), request.headers.get("x-forwarded-proto"),
                           (request.context or {}).get("path"), route_start)


@app.route("/", content_types=ANY_CONTENT_TYPE)
def index():
    return _html(pages.recorder())


@app.route("/health", content_types=ANY_CONTENT_TYPE)
def health():
    return {"service": "video-management-api", "status": "ok"}


@app.route("/watch/{video_id}", content_types=ANY_CONTENT_TYPE)
def watch(video_id):
    try:
        return _html(pages.watch(services().videos, parse_video_id(video_id), _url_token(),
                                 _site_base("/watch/")))
    except errors.VideoError as error:
        if isinstance(error, errors.StorageUnavailable):
            logger.exception("an AWS call failed")
        return _html(pages.error_page(error, _http_status(error)))


@api_route("/watch/{video_id}/poster", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def watch_poster(video_id):
    """The share page's poster (og:image) at a stable URL: a presigned one expires."""
    view = services().videos.status(parse_video_id(video_id), None, _url_token())
    if not view.poster_url:
        raise errors.VideoNotFound("this video has no poster (yet)")
    return Response(body="", status_code=302, headers={"Location": view.poster_url})
# --- end of the pages ---


@api_route("/create_video", methods=["POST"], content_types=CHUNK_CONTENT_TYPES)
def create_video():
    return Response(responses.created_body(services().videos.create()), status_code=201)


@api_route("/append_video/{video_id}", methods=["POST"], content_types=CHUNK_CONTENT_TYPES)
def append_video(video_id):
    request = app.current_request
    headers = request.headers
    video_id = parse_video_id(video_id)
    where = byte_range(headers.get("content-range"))
    check_delivered_as_bytes(request.to_original_event())
    chunk = chunk_from_body(request.raw_body or b"", headers.get("content-type"),
                            get_settings().max_chunk_bytes, headers.get("content-length"))
    check_digest(chunk, headers.get("content-digest"))
    appended = services().videos.append(video_id, _token(), chunk, where)
    return Response(responses.appended_body(appended),
                    headers={"Upload-Offset": str(appended.committed_bytes)})


@api_route("/get_video/{video_id}", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def get_video(video_id):
    query = app.current_request.query_params or {}
    download = query.get("download") in ("1", "true")
    playback = services().videos.playback(parse_video_id(video_id), _token(), _url_token(), download,
                                          parse_format(query.get("format")))
    if playback.url is None:
        seconds = get_settings().retry_after_seconds
        return Response(responses.processing_body(seconds), status_code=202,
                        headers={"Retry-After": str(seconds)})
    return Response(responses.playback_body(playback.url, playback.content_type),
                    status_code=302, headers={"Location": playback.url})


@api_route("/videos/{video_id}", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def video_status(video_id):
    return responses.video_body(services().videos.status(parse_video_id(video_id), _token()))


@api_route("/videos/{video_id}", methods=["DELETE"], content_types=ANY_CONTENT_TYPE)
def delete_video(video_id):
    services().videos.delete(parse_video_id(video_id), _token())
    return Response(body="", status_code=204)


@api_route("/videos/{video_id}/pieces", methods=["POST"], content_types=CHUNK_CONTENT_TYPES)
def start_piece(video_id):
    piece = services().videos.start_piece(parse_video_id(video_id), _token())
    return Response(responses.piece_body(piece), status_code=201)


@api_route("/videos/{video_id}/pieces/{piece_id}/commit", methods=["POST"],
           content_types=CHUNK_CONTENT_TYPES)
def commit_piece(video_id, piece_id):
    where = byte_range(app.current_request.headers.get("content-range"))
    appended = services().videos.commit_piece(parse_video_id(video_id), _token(),
                                              parse_piece_id(piece_id), where)
    return Response(responses.appended_body(appended),
                    headers={"Upload-Offset": str(appended.committed_bytes)})


@api_route("/videos/{video_id}/finalize", methods=["POST"], content_types=CHUNK_CONTENT_TYPES)
def finalize_video(video_id):
    return responses.video_body(services().videos.finalize(parse_video_id(video_id), _token()))


@api_route("/videos/{video_id}/playback_token", methods=["POST"], content_types=CHUNK_CONTENT_TYPES)
def new_playback_token(video_id):
    video_id = parse_video_id(video_id)
    return responses.playback_token_body(video_id, services().videos.new_playback_token(video_id, _token()))


@app.route("/openapi.json", content_types=ANY_CONTENT_TYPE)
def openapi_document():
    """Every route above in OpenAPI 3.1, written in chalicelib/openapi.py (built once)."""
    return Response(openapi.document_json(app, HTTP_STATUS), headers={"Content-Type": "application/json"})


@app.schedule(Rate(1, unit=Rate.HOURS))
def expire_abandoned(event):
    """Recordings never joined that took no chunk for EXPIRE_AFTER_SECONDS go, record and
    objects. (Under make run the local worker calls this every minute.)"""
    removed = services().videos.expire_abandoned()
    logger.info("expired abandoned recordings", extra={"video_ids": removed})


# The packaged template (.chalice/template.json) points this trigger at its JoinQueue, whose
# name CloudFormation chooses; under make run the local worker reads JOB_QUEUE_NAME instead.
# (An ARN, which the template replaces whole; a queue name would be merged, not replaced.)
#
# One message per invocation, although each message of a batch succeeds or fails on its
# own (chalicelib.join_messages): a batch's joins run one after another, so the last message
# would wait for the joins before it (time to ready is what a viewer waits for) and all of
# them would share one 900 s timeout, while Lambda bills by the millisecond: a batch would
# save only the per-request charge. It is also what makes a rendition's pieces (and a
# re-encode's files) run at once: each piece's message gets an invocation of its own.
@app.on_sqs_message(queue_arn="arn:aws:sqs:::JoinQueue", batch_size=1)
def join_videos(event):
    """The job of each message (a join, a step of its re-encode, or a step of a video's MP4
    rendition); answers the messages that failed (batchItemFailures), which
    alone come back. The trigger needs FunctionResponseTypes: ReportBatchItemFailures."""
    return join_batch(event.to_dict(), services().joiner, services().backend.queue,
                      services().renditions, services().reencodes)
