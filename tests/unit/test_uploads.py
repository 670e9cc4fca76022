import base64
import hashlib

import pytest
import requests

from chalicelib.errors import ChunkTooLarge, DigestMismatch, InvalidRange, InvalidUpload
from chalicelib.uploads import ByteRange, byte_range, check_digest, chunk_from_body

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


def test_a_body_shorter_than_its_content_length_is_refused():
    with pytest.raises(InvalidUpload, match="ended after 5 of the 10 bytes"):
        chunk_from_body(b"12345", "video/webm", 10_000, content_length="10")
    assert chunk_from_body(b"12345", "video/webm", 10_000, content_length="5") == b"12345"


def test_a_form_cut_before_its_closing_boundary_is_refused():
    body, content_type = form({"chunk": ("blob", BINARY, "video/webm")})
    assert body.rstrip().endswith(b"--")
    with pytest.raises(InvalidUpload, match="before its closing boundary"):
        chunk_from_body(body[:len(body) // 2], content_type, 10_000)


@pytest.mark.parametrize("header, expected", [
    ("bytes 0-99/*", ByteRange(0, 99, None)),
    ("bytes 100-199/200", ByteRange(100, 199, 200)),
    (" bytes 5-5/* ", ByteRange(5, 5, None)),
    (None, None), ("", None),
])
def test_a_content_range_names_the_chunk_s_bytes(header, expected):
    assert byte_range(header) == expected


@pytest.mark.parametrize("header", ["bytes 10-5/*", "bytes 0-99/50", "bytes=0-99/*", "0-99/*",
                                    "bytes -5/*", "bytes 0-99", "items 0-99/*", "bytes 0-" + "9" * 20 + "/*"])
def test_a_malformed_content_range_is_refused_quoting_it_short(header):
    with pytest.raises(InvalidRange) as refused:
        byte_range(header)
    assert len(refused.value.message) < 120


def test_a_content_digest_must_match_the_chunk():
    digest = base64.b64encode(hashlib.sha256(BINARY).digest()).decode()
    check_digest(BINARY, f"sha-256=:{digest}:")
    check_digest(BINARY, f"sha-512=:AAAA:, sha-256=:{digest}:")
    check_digest(BINARY, None)
    check_digest(BINARY, "sha-512=:AAAA:")  # an algorithm not known here is ignored (RFC 9530)
    with pytest.raises(DigestMismatch, match="damaged on the way"):
        check_digest(BINARY + b"x", f"sha-256=:{digest}:")
    with pytest.raises(DigestMismatch, match="not base64"):
        check_digest(BINARY, "sha-256=:***:")
