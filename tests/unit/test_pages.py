"""The HTML pages (chalicelib.pages, routed in app.py) through Chalice's test client over the
in-memory backend: the recorder at /, health as JSON, and the share page /watch/<id> with
its token rules, escaping, Open Graph tags and headers."""
import dataclasses
import html
import json
import re
from html.parser import HTMLParser
from urllib.parse import quote

import pytest

import app as app_module
from chalicelib import pages
from chalicelib.models import JoinMethod, MediaSummary
from tests.conftest import fixture_chunks
from tests.helpers import record

MEDIA = MediaSummary(container="webm", content_type="video/webm", duration=4.2, byte_size=812_345,
                     join_method=JoinMethod.SEGMENTS, audio_only=False, video_codec="vp8",
                     width=640, height=480, audio_codec="opus")


def recorded(services, media: MediaSummary = MEDIA, joined: bool = True):
    """A video with the fixture chunks; joined: a compiled object and poster recorded as a
    finished join records them. Returns (id, upload token, playback token)."""
    created = services.videos.create()
    video_id = created.view.video.video_id
    for chunk in fixture_chunks()[:2]:
        services.videos.append(video_id, created.upload_token, chunk)
    if joined:
        catalog, store = services.backend.catalog, services.backend.store
        count = catalog.get(video_id).chunk_count
        catalog.finish_join(video_id, count, store.compiled_key(video_id, count, "webm"),
                            store.compiled_key(video_id, count, "jpg"), media)
    return video_id, created.upload_token, created.playback_token


class _Meta(HTMLParser):
    """The page's <meta property> tags and the attributes of its <video> and <a>."""

    def __init__(self):
        super().__init__()
        self.properties, self.videos, self.links, self.sources = {}, [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and "property" in attrs:
            self.properties[attrs["property"]] = attrs["content"]
        elif tag == "video":
            self.videos.append(attrs)
        elif tag == "a":
            self.links.append(attrs)
        elif tag == "source":
            self.sources.append(attrs)


def parsed(text: str) -> _Meta:
    meta = _Meta()
    meta.feed(text)
    return meta


def assert_html_page(response, status: int = 200):
    assert response.status_code == status, response.body[:500]
    headers = {name.lower(): value for name, value in response.headers.items()}
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["referrer-policy"] == "no-referrer"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    return response.body.decode() if isinstance(response.body, bytes) else response.body


def test_health_answers_the_json_the_root_used_to(client):
    response = client.http.get("/health")
    assert response.status_code == 200
    assert json.loads(response.body) == {"service": "video-management-api", "status": "ok"}


def test_root_serves_the_recorder_page_with_its_buttons(client):
    text = assert_html_page(client.http.get("/"))
    assert ">Start recording</button>" in text and ">Stop</button>" in text
    assert 'role="alert"' in text
    assert text == pages.RECORDER_FILE.read_text(encoding="utf-8")


def test_the_recorder_page_csp_allows_exactly_its_own_inline_script(client):
    response = client.http.get("/")
    policy = response.headers["Content-Security-Policy"]
    script = re.search(r"<script>(.*?)</script>", response.body.decode(), re.DOTALL).group(1)
    import base64
    import hashlib
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_share_page_shows_the_video_with_absolute_open_graph_urls(client, services):
    video_id, upload, playback = recorded(services)
    response = client.http.get(f"/watch/{video_id}?token={playback}",
                               headers={"Host": "abc.execute-api.eu-west-1.amazonaws.com",
                                        "X-Forwarded-Proto": "https"})
    text = assert_html_page(response)
    base = "https://abc.execute-api.eu-west-1.amazonaws.com/"
    token = quote(playback, safe="")
    meta = parsed(text)
    assert meta.properties["og:title"] == f"Recording {video_id}"
    assert meta.properties["og:type"] == "video.other"
    assert meta.properties["og:video"] == f"{base}get_video/{video_id}/?token={token}"
    assert meta.properties["og:image"] == f"{base}watch/{video_id}/poster?token={token}"
    assert meta.properties["og:video:type"] == "video/webm"
    assert meta.videos == [{"id": "video", "controls": None, "playsinline": None,
                            "preload": "metadata",
                            "poster": f"{base}watch/{video_id}/poster?token={token}"}]
    # The MP4 rendition first (what iOS Safari plays), then the original as recorded.
    assert meta.sources == [
        {"src": f"{base}get_video/{video_id}/?format=mp4&token={token}", "type": "video/mp4"},
        {"src": f"{base}get_video/{video_id}/?token={token}", "type": "video/webm"}]
    assert {"class": "button", "id": "download", "href": meta.sources[1]["src"] + "&download=1",
            "download": None} in meta.links
    assert "0:04 (4.2 s)" in text and "0.8 MB (812,345 bytes)" in text
    assert upload not in text  # the upload token never goes into the page


def test_share_page_links_keep_the_stage_path(client, services):
    """On an execute-api domain the API sits under /<stage>/: the request's path says so."""
    assert pages.site_base("x.example", "https", "/api/watch/7", "/watch/") == "https://x.example/api/"
    assert pages.site_base("127.0.0.1:8000", None, "/watch/7/", "/watch/") == "http://127.0.0.1:8000/"
    assert pages.site_base("h", "javascript", "/watch/7", "/watch/") == "http://h/"


def test_share_page_refuses_the_upload_token_and_never_shows_it(client, services):
    video_id, upload, _ = recorded(services)
    response = client.http.get(f"/watch/{video_id}?token={quote(upload, safe='')}")
    text = assert_html_page(response, 403)
    assert "upload_token does not go in a URL" in text
    assert upload not in text


def test_share_page_refuses_a_header_token_alone_as_missing(client, services):
    video_id, upload, _ = recorded(services)
    response = client.http.get(f"/watch/{video_id}", headers={"Authorization": f"Bearer {upload}"})
    text = assert_html_page(response, 401)
    assert upload not in text
    assert "This link has no token" in text and "Authorization" not in text


@pytest.mark.parametrize("path, status", [("/watch/99?token=x", 404), ("/watch/1?token=nope", 403),
                                          ("/watch/abc?token=x", 400)])
def test_share_page_errors_are_html_pages_with_the_right_status(client, services, path, status):
    recorded(services)
    text = assert_html_page(client.http.get(path), status)
    assert 'role="alert"' in text


def test_share_page_escapes_what_it_interpolates(client, services):
    hostile = "<script>alert(1)</script>"
    video_id, _, playback = recorded(services, dataclasses.replace(
        MEDIA, content_type='video/webm"><script>x()</script>', video_codec=hostile))
    response = client.http.get(f"/watch/{video_id}?token={playback}",
                               headers={"Host": 'evil"><script>alert(2)</script>'})
    text = assert_html_page(response)
    assert "<script" not in text
    assert html.escape(hostile) in text
    # The id in an error comes from the URL too.
    error = assert_html_page(client.http.get("/watch/<img>?token=x"), 400)
    assert "<img>" not in error and "&lt;img&gt;" in error


def test_share_page_of_a_video_being_joined_says_processing_and_refreshes(client, services):
    video_id, _, playback = recorded(services, joined=False)
    text = assert_html_page(client.http.get(f"/watch/{video_id}?token={playback}"))
    assert "processing" in text
    assert f'<meta http-equiv="refresh" content="{pages.REFRESH_SECONDS}">' in text
    assert "<video" not in text


def test_share_page_of_a_failed_video_says_why(client, services):
    video_id, _, playback = recorded(services, joined=False)
    catalog = services.backend.catalog
    catalog.fail_join(video_id, catalog.get(video_id).chunk_count, "no <whole> frame")
    text = assert_html_page(client.http.get(f"/watch/{video_id}?token={playback}"), 422)
    assert "no &lt;whole&gt; frame" in text


def test_poster_redirects_for_the_playback_token_only(client, services):
    video_id, upload, playback = recorded(services)
    answer = client.http.get(f"/watch/{video_id}/poster?token={playback}")
    assert answer.status_code == 302 and answer.headers["Location"]
    refused = client.http.get(f"/watch/{video_id}/poster?token={quote(upload, safe='')}")
    assert refused.status_code == 403 and json.loads(refused.body)["Code"] == "WrongToken"
