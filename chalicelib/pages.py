"""The two HTML pages: the recorder (a static file, packaged with chalicelib so that the
Lambda zip holds it) and the share page of one video, rendered here from the status use
case. app.py only routes; every value put into HTML goes through html.escape."""
import base64
import functools
import hashlib
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from chalicelib import renditions
from chalicelib.errors import VideoError
from chalicelib.models import RenditionState, Status
from chalicelib.videos import VideoService, VideoView

RECORDER_FILE = Path(__file__).resolve().parent / "web" / "recorder.html"

# How often the share page of a video still being joined reloads itself.
REFRESH_SECONDS = 3

HTML_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Page:
    body: str
    status: int = 200
    headers: dict = field(default_factory=dict)


def _hashes(document: str, tag: str) -> str:
    """CSP hash sources of every inline <tag> block: the page's own code runs, and nothing
    injected would (no 'unsafe-inline')."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", document, re.DOTALL)
    return " ".join("'sha256-%s'" % base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
                    for block in blocks) or "'none'"


def _headers(document: str) -> dict:
    # The video and poster come from presigned S3 URLs (another origin, http on the local
    # emulator), hence http:/https: for media and images. The share URL holds a token:
    # no-referrer keeps it out of the Referer of every request the page makes.
    policy = "; ".join([
        "default-src 'none'", f"script-src {_hashes(document, 'script')}",
        f"style-src {_hashes(document, 'style')}", "connect-src 'self'",
        "media-src 'self' blob: https: http:", "img-src 'self' data: https: http:",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ])
    return {"Content-Type": HTML_TYPE, "Content-Security-Policy": policy,
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"}


@functools.lru_cache(maxsize=None)
def recorder() -> Page:
    """Read once per Lambda container (the file does not change while it runs)."""
    document = RECORDER_FILE.read_text(encoding="utf-8")
    return Page(document, headers=_headers(document))


def site_base(host: str | None, forwarded_proto: str | None, request_path: str | None,
              route_start: str) -> str:
    """The API's public root URL (with a trailing slash) from the request: its Host, its
    scheme (API Gateway says https in X-Forwarded-Proto) and whatever precedes the route in
    the path (the stage, `/api`, on an execute-api domain; nothing under `make run`)."""
    path = request_path or "/"
    at = path.rfind(route_start)
    prefix = path[:at] if at >= 0 else ""
    scheme = (forwarded_proto or "http").split(",")[0].strip().lower()
    scheme = scheme if scheme in ("http", "https") else "http"
    return f"{scheme}://{host or 'localhost'}{prefix}/"


_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f5f5f7; color: #1d1d1f; }
main { max-width: 56em; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin: 0 0 0.5em; }
video { width: 100%; max-height: 70vh; background: #000; border-radius: 6px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dt { color: #555; } dd { margin: 0; }
a.button { display: inline-block; padding: 0.5em 1em; background: #0a66c2; color: #fff;
  border-radius: 4px; text-decoration: none; }
.notice { padding: 1em; background: #fff; border-left: 4px solid #0a66c2; }
.error { padding: 1em; background: #fff; border-left: 4px solid #b00020; }
.detail { color: #555; font-size: 0.9em; }
"""


def _document(title: str, body: str, head: str = "") -> str:
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="referrer" content="no-referrer">\n<title>{html.escape(title)}</title>\n'
            f"{head}<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def _page(title: str, body: str, status: int = 200, head: str = "") -> Page:
    document = _document(title, body, head)
    return Page(document, status, _headers(document))


_ERROR_TEXT = {
    # A share link without its token: the API's message (about the Authorization header)
    # is for programs; a person needs to know the link is incomplete.
    401: ("A token is needed", "This link has no token: open the share link exactly as it "
          "was given (it ends with ?token=...)."),
    403: ("This link does not give access to the video", "The token in this link is not the "
          "video's playback token. Ask for the share link the recorder page shows."),
    404: ("There is no such video", "No video has this number: it may have been deleted."),
}


def error_page(error: VideoError, status: int) -> Page:
    """An error a person reads: what went wrong in words, then the API's own (escaped)."""
    headline, text = _ERROR_TEXT.get(status, ("The video cannot be shown", error.message))
    body = (f"<h1>{html.escape(headline)}</h1>\n"
            f'<p class="error" role="alert">{html.escape(text)}</p>')
    if status != 401 and text != error.message:  # the 401 message is for programs (a header)
        body += f'\n<p class="detail">Details: {html.escape(error.message)}</p>'
    return _page(headline, body, status)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d} ({seconds:.1f} s)"


def _size(size: int | None) -> str:
    if size is None:
        return "unknown"
    return f"{size / 1_000_000:.1f} MB ({size:,} bytes)" if size >= 100_000 else f"{size:,} bytes"


def watch(videos: VideoService, video_id: int, url_token: str | None, base: str) -> Page:
    """The share page of a video, for the holder of its playback token (the status and
    playback use cases check it: the upload token in a URL is refused with WrongToken).
    `base` is the API's public root URL. Raises the service's errors for the caller to
    answer as an error page."""
    view = videos.status(video_id, None, url_token)
    if view.status is Status.FAILED:
        videos.playback(video_id, None, url_token)  # raises NotPlayable, with the reason
    if view.status is not Status.READY:
        if view.status is not Status.EMPTY:
            videos.playback(video_id, None, url_token)  # asks for the join now, if none runs
        return _processing(video_id, view)
    return _ready(video_id, url_token, view, base)


def _processing(video_id: int, view: VideoView) -> Page:
    what = ("Nothing has been recorded yet." if view.status is Status.EMPTY
            else "The recording is being processed.")
    body = (f"<h1>Recording {video_id}</h1>\n"
            f'<p class="notice" role="status">processing: {html.escape(what)} '
            f"This page reloads every {REFRESH_SECONDS} seconds until the video is ready.</p>")
    return _page(f"Recording {video_id} (processing)", body,
                 head=f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">\n')


def _ready(video_id: int, url_token: str | None, view: VideoView, base: str) -> Page:
    media = view.video.media
    token = quote(url_token or "", safe="")
    video_url = f"{base}get_video/{video_id}/?token={token}"
    page_url = f"{base}watch/{video_id}?token={token}"
    poster_url = f"{base}watch/{video_id}/poster?token={token}" if view.poster_url else None
    title = f"Recording {video_id}"
    e = html.escape
    meta = [("og:title", title), ("og:type", "video.other"), ("og:url", page_url),
            ("og:video", video_url), ("og:video:type", media.content_type)]
    if media.width and media.height:
        meta += [("og:video:width", str(media.width)), ("og:video:height", str(media.height))]
    if poster_url:
        meta.append(("og:image", poster_url))
    if media.duration is not None:
        meta.append(("video:duration", str(int(round(media.duration)))))
    head = "".join(f'<meta property="{e(name)}" content="{e(value)}">\n' for name, value in meta)
    poster = f' poster="{e(poster_url)}"' if poster_url else ""
    # Each browser plays the first source it can: the H.264/AAC MP4 rendition first (iOS
    # Safari plays no WebM; until the rendition is made it answers 202 and the browser goes
    # on to the next source), then the original as recorded. A rendition that failed or is
    # too long is not offered: it never will be.
    sources = [(video_url, media.content_type)]
    rendition = view.video.current_rendition()
    if renditions.wanted(media) and (rendition is None or rendition.state in (
            RenditionState.PENDING, RenditionState.READY)):
        sources.insert(0, (f"{base}get_video/{video_id}/?format=mp4&token={token}",
                           renditions.CONTENT_TYPE))
    source_tags = "".join(f'<source src="{e(url)}" type="{e(kind)}">' for url, kind in sources)
    codecs = ", ".join(c for c in (media.video_codec, media.audio_codec) if c) or "unknown"
    frame = f"{media.width} × {media.height}" if media.width and media.height else "audio only"
    body = (f"<h1>{e(title)}</h1>\n"
            f'<video id="video" controls playsinline preload="metadata"{poster}>'
            f"{source_tags}</video>\n<dl>\n"
            f"<dt>Duration</dt><dd id=\"duration\">{e(_duration(media.duration))}</dd>\n"
            f"<dt>Size</dt><dd id=\"size\">{e(_size(media.byte_size))}</dd>\n"
            f"<dt>Picture</dt><dd>{e(frame)}</dd>\n"
            f"<dt>Format</dt><dd>{e(media.content_type)} ({e(codecs)})</dd>\n</dl>\n"
            f'<p><a class="button" id="download" href="{e(video_url)}&amp;download=1" download>Download the video</a></p>')
    return _page(title, body, head=head)
