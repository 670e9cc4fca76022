"""Upload tokens: random secrets handed out once; only their SHA-256 is stored."""
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


def required_hash(token: str | None) -> str:
    if not token:
        raise MissingToken("this call needs the video's upload_token: "
                           "send 'Authorization: Bearer <upload_token>'")
    return token_hash(token)


def check_token(token: str | None, expected_hash: str) -> None:
    # Compare hashes in constant time, so timing tells nothing about the stored hash.
    if not hmac.compare_digest(required_hash(token), expected_hash):
        raise WrongToken("the upload_token does not belong to this video")
