"""When to send a request again, and how long to wait first.

Every request the uploader makes can be repeated safely: an append or a piece commit sent
again with the same Content-Range is answered as the first attempt was and stored once, a
finalize twice is one finalize, and reads are reads. So connection errors, timeouts, 5xx
and 429 are retried, with exponential back-off and full jitter (a random wait between 0 and
the back-off, so that many clients cut off by the same outage do not come back in step),
and at least as long as a Retry-After asks.
"""
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Callable

import requests

# A 501 or 505 says the server will never do it: not worth a retry, unlike the other 5xx.
_PERMANENT_5XX = {501, 505}

# Failures of the connection itself, before or during the answer: the request may or may
# not have arrived, which the API's retry rules make harmless.
TRANSIENT_EXCEPTIONS = (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError)


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status < 600 and status not in _PERMANENT_5XX)


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `retry` (0 for the first): uniform between 0
    and base * 2**retry, never more than cap ("full jitter")."""
    return rng.uniform(0.0, min(cap, base * 2 ** retry))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header in seconds: either delay-seconds or an HTTP date (RFC 9110);
    None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5  # tries after the first
    base: float = 0.5  # seconds: the first back-off is up to this, then doubling
    cap: float = 30.0  # no back-off above this
    max_retry_after: float = 300.0  # a Retry-After above this is taken as this

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        jittered = backoff_delay(retry, self.base, self.cap, rng)
        if retry_after is None:
            return jittered
        return max(min(retry_after, self.max_retry_after), jittered)


def describe(error: Exception) -> str:
    """One line for a connection failure (requests' own messages run over several)."""
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection broke during the answer"
    text = str(error)
    for known, said in (("Connection refused", "connection refused"),
                        ("RemoteDisconnected", "the connection closed without an answer"),
                        ("Connection reset", "connection reset"),
                        ("Name or service not known", "unknown host"),
                        ("Failed to resolve", "unknown host")):
        if known in text:
            return said
    return text.splitlines()[0][:200] if text else type(error).__name__


def send_with_retries(send: Callable[[], requests.Response], policy: RetryPolicy,
                      on_retry: Callable[[str, float, int], None] = lambda why, delay, number: None,
                      sleep: Callable[[float], None] = time.sleep,
                      rng: random.Random | None = None) -> requests.Response:
    """send() until it answers something not worth retrying, or the retries run out.

    Returns the last answer (a 5xx or 429 too, when every retry got one: the caller says
    what it was); raises requests' exception when the last try could not connect.
    on_retry(why, delay, retry number) is told before each wait."""
    rng = rng or random.Random()
    for retry in range(policy.retries + 1):
        try:
            response = send()
        except TRANSIENT_EXCEPTIONS as error:
            if retry == policy.retries:
                raise
            why, retry_after = describe(error), None
        else:
            if not is_retryable_status(response.status_code) or retry == policy.retries:
                return response
            why = f"{response.status_code} {response.reason or ''}".strip()
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            response.close()  # hand the connection back to the pool
        delay = policy.delay(retry, retry_after, rng)
        on_retry(why, delay, retry + 1)
        sleep(delay)
    raise AssertionError("unreachable: the last try returns or raises")
