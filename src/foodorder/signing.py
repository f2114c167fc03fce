"""The webhooks' signature, both ways: hex HMAC-SHA256 of "{timestamp}.{raw body}" with the provider's secret.

Headers: `X-Foodorder-Timestamp` (epoch seconds) and `X-Foodorder-Signature`. A receiver refuses a
timestamp more than TOLERANCE_S away from its own clock, so that a captured request cannot be
replayed later.
"""

import hashlib
import hmac

TIMESTAMP = "X-Foodorder-Timestamp"
SIGNATURE = "X-Foodorder-Signature"
EVENT_ID = "X-Foodorder-Event-Id"
TOLERANCE_S = 300


class BadSignature(Exception):
    """The request is not signed by the provider's secret, or not recently: it must be refused."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature of `body` sent at `timestamp` (epoch seconds): lowercase hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers that sign `body` sent at `timestamp`."""
    return {TIMESTAMP: str(timestamp), SIGNATURE: sign(secret, timestamp, body)}


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> None:
    """Return if `signature` signs `body` at `timestamp` within TOLERANCE_S of `now`; else BadSignature."""
    if not timestamp or not signature:
        raise BadSignature(f"missing {TIMESTAMP} or {SIGNATURE} header")
    try:
        sent = int(timestamp)
    except ValueError:
        raise BadSignature(f"{TIMESTAMP}: expected epoch seconds, got {timestamp[:40]!r}") from None
    if abs(now - sent) > TOLERANCE_S:
        raise BadSignature(f"{TIMESTAMP} is more than {TOLERANCE_S} s away from now")
    # Constant-time: how long the comparison takes tells nothing about the right signature.
    if not hmac.compare_digest(sign(secret, sent, body).encode(), signature.strip().lower().encode()):
        raise BadSignature(f"{SIGNATURE} does not match the body")
