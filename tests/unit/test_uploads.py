import pytest
import requests

from chalicelib.errors import ChunkTooLarge, InvalidUpload
from chalicelib.uploads import chunk_from_body

BINARY = bytes(range(256)) * 4 + b"\r\n--boundary\r\n"


def form(files: dict, data: dict | None = None) -> tuple[bytes, str]:
    prepared = requests.Request("POST", "http://x", files=files, data=data or {}).prepare()
    return prepared.body, prepared.headers["Content-Type"]


@pytest.mark.parametrize("content_type", [None, "video/webm", "application/x-www-form-urlencoded",
                                          "application/octet-stream"])
def test_a_raw_body_is_the_chunk(content_type):
    assert chunk_from_body(BINARY, content_type, 10_000) == BINARY


def test_a_form_yields_its_one_file_field_even_beside_text_fields():
    body, content_type = form({"chunk": ("blob", BINARY, "video/webm")}, {"index": "3"})
    assert chunk_from_body(body, content_type, 10_000) == BINARY


def test_a_form_with_two_files_is_refused():
    body, content_type = form({"a": ("a", b"1"), "b": ("b", b"2")})
    with pytest.raises(InvalidUpload, match="2 files"):
        chunk_from_body(body, content_type, 10_000)


def test_a_form_without_a_file_is_refused():
    body, content_type = form({"a": (None, "1"), "b": (None, "2")})  # text fields only
    with pytest.raises(InvalidUpload, match="no file"):
        chunk_from_body(body, content_type, 10_000)


def test_a_form_with_a_wrong_boundary_is_refused():
    body, _ = form({"chunk": ("blob", BINARY)})
    with pytest.raises(InvalidUpload):
        chunk_from_body(body, "multipart/form-data; boundary=nothere", 10_000)


def test_empty_bodies_and_empty_files_are_refused():
    with pytest.raises(InvalidUpload, match="empty"):
        chunk_from_body(b"", "video/webm", 10)
    body, content_type = form({"chunk": ("blob", b"")})
    with pytest.raises(InvalidUpload, match="empty"):
        chunk_from_body(body, content_type, 10)


def test_the_limit_applies_to_the_chunk_not_the_envelope():
    body, content_type = form({"chunk": ("blob", b"x" * 1000)})
    assert len(body) > 1000
    assert chunk_from_body(body, content_type, 1000) == b"x" * 1000
    with pytest.raises(ChunkTooLarge) as raised:
        chunk_from_body(b"x" * 1001, "video/webm", 1000)
    assert raised.value.details == {"limit_bytes": 1000}
