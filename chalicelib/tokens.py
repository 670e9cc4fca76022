"""Tokens: random secrets handed out once; only their SHA-256 is stored.

Two capabilities, two tokens: the upload token (append, finalize) goes only in the
Authorization header; the playback token (read-only) may go in a player's URL, where access
logs and shared links keep it, and can be replaced."""
import hashlib
import hmac
import secrets

from chalicelib.errors import MissingToken, WrongToken


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other header."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def present(token: str | None) -> str:
    if not token:
        raise MissingToken("this call needs the video's upload_token: "
                           "send 'Authorization: Bearer <upload_token>'")
    return token


def required_hash(token: str | None) -> str:
    return token_hash(present(token))


def matches(token: str, expected_hash: str | None) -> bool:
    # Compare hashes in constant time, so timing tells nothing about the stored hash.
    return expected_hash is not None and hmac.compare_digest(token_hash(token), expected_hash)


def check_token(token: str | None, expected_hash: str) -> None:
    if not matches(present(token), expected_hash):
        raise WrongToken("the upload_token does not belong to this video")


def check_reader(header_token: str | None, url_token: str | None, upload_hash: str,
                 playback_hash: str | None) -> None:
    """A read (status, playback): the upload token in the Authorization header, or the
    playback token in the header or the URL. The upload token in a URL is refused."""
    if url_token is not None and header_token is None:
        if matches(url_token, playback_hash):
            return
        if matches(url_token, upload_hash):
            raise WrongToken("the upload_token does not go in a URL, where logs keep it: put the "
                             "playback_token in ?token=, or the upload_token in the Authorization header")
        raise WrongToken("the token is not this video's playback_token")
    token = present(header_token)
    if not (matches(token, upload_hash) or matches(token, playback_hash)):
        raise WrongToken("the token belongs to no reader of this video")
