"""The video-chunk API: routes only. Each parses the request, calls one use case of
`chalicelib.videos`, and shapes the response; errors become JSON in `_error_response`."""
import functools

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from chalice import Chalice, ConvertToMiddleware, CORSConfig, Response

from chalicelib import errors
from chalicelib.catalog import Catalog
from chalicelib.jobs import JobQueue, join_request_of
from chalicelib.joiner import Joiner
from chalicelib.settings import get_settings
from chalicelib.storage import ObjectStore
from chalicelib.tokens import bearer_token
from chalicelib.uploads import CHUNK_CONTENT_TYPES, chunk_from_body
from chalicelib.videos import VideoService, parse_video_id

app = Chalice(app_name="video-management-api")
logger = Logger(service="video-management-api")
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context))

# API Gateway passes a body through untouched only when its Content-Type is a binary media
# type; any other arrives as text and binary chunks are corrupted. So every type an append
# accepts is declared binary (chalice deploys this list as the API's binaryMediaTypes).
app.api.binary_types = sorted(set(app.api.binary_types) | (set(CHUNK_CONTENT_TYPES) - {"application/json"}))
app.api.cors = CORSConfig(
    allow_origin="*",
    allow_headers=["Authorization", "Content-Type", "Content-Range"],
    expose_headers=["Location", "Retry-After"],
    max_age=600,
)

# A GET has no body; a Content-Type header a client sends anyway is no reason for a 415.
ANY_CONTENT_TYPE = ["*/*"]

HTTP_STATUS = {
    errors.InvalidVideoId: 400,
    errors.InvalidUpload: 400,
    errors.NoChunks: 400,
    errors.MissingToken: 401,
    errors.WrongToken: 403,
    errors.VideoNotFound: 404,
    errors.ChunkTooLarge: 413,
    errors.NotPlayable: 422,
    errors.StorageUnavailable: 503,
}


@functools.lru_cache(maxsize=None)
def get_service() -> VideoService:
    return VideoService(get_settings(), Catalog(), ObjectStore(), JobQueue())


@functools.lru_cache(maxsize=None)
def get_joiner() -> Joiner:
    return Joiner(get_settings(), Catalog(), ObjectStore(), JobQueue())


def _error_response(error: errors.VideoError) -> Response:
    status = next(code for kind, code in HTTP_STATUS.items() if isinstance(error, kind))
    return Response({"Code": error.code, "Message": error.message, **error.details},
                    status_code=status)


def api_route(path: str, **options):
    """app.route, with the service's errors answered as JSON. An AWS service that does not
    answer (throttling, an outage) is a 503 the client may retry, not a 500."""
    def register(view):
        @functools.wraps(view)
        def handle(**arguments):
            try:
                return view(**arguments)
            except errors.VideoError as error:
                return _error_response(error)
            except (BotoCoreError, ClientError) as error:
                logger.exception("an AWS call failed")
                return _error_response(errors.StorageUnavailable(
                    f"the storage service did not answer ({type(error).__name__}); retry"))
        return app.route(path, **options)(handle)
    return register


def _token(allow_query: bool = False) -> str | None:
    request = app.current_request
    token = bearer_token(request.headers.get("authorization"))
    if token is None and allow_query:
        token = (request.query_params or {}).get("token")
    return token


@app.route("/")
def index():
    return {"service": "video-management-api", "status": "ok"}


@api_route("/create_video", methods=["POST"], content_types=CHUNK_CONTENT_TYPES)
def create_video():
    service = get_service()
    created = service.create()
    body = {"video_id": created.video.video_id, "upload_token": created.upload_token,
            **service.describe(created.video)}
    return Response(body, status_code=201)


@api_route("/append_video/{video_id}", methods=["POST"], content_types=CHUNK_CONTENT_TYPES)
def append_video(video_id):
    request = app.current_request
    video_id = parse_video_id(video_id)
    chunk = chunk_from_body(request.raw_body or b"", request.headers.get("content-type"),
                            get_settings().max_chunk_bytes)
    appended = get_service().append(video_id, _token(), chunk)
    first = appended.chunk_index == 0
    return {"message": "Video added successfully" if first
            else "Video appended and joined successfully",
            "video_id": video_id, "chunk_index": appended.chunk_index,
            "bytes_received": appended.chunk_bytes}


@api_route("/get_video/{video_id}", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def get_video(video_id):
    playback = get_service().playback(parse_video_id(video_id), _token(allow_query=True))
    if playback.url is None:
        seconds = get_settings().retry_after_seconds
        return Response({"status": "processing", "retry_after": seconds}, status_code=202,
                        headers={"Retry-After": str(seconds)})
    return Response({"url": playback.url, "content_type": playback.content_type},
                    status_code=302, headers={"Location": playback.url})


@api_route("/videos/{video_id}", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def video_status(video_id):
    return get_service().status(parse_video_id(video_id), _token())


@app.on_sqs_message(queue=get_settings().job_queue_name, batch_size=1)
def join_videos(event):
    for record in event:
        video_id, urgent = join_request_of(record.body)
        outcome = get_joiner().run(video_id, urgent=urgent)
        logger.info("join job", extra={"video_id": video_id, "outcome": outcome})
