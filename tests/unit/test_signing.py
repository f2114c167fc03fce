"""The webhooks' signature: known vectors, and every way a request is refused."""

import hashlib
import hmac

import pytest

from foodorder.signing import TOLERANCE_S, BadSignature, sign, verify

SECRET = "whsec-test-0123456789"
BODY = b'{"id":"order-1","restaurantId":"bites_n_bytes","products":[{"productId":"1000","quantity":2}]}'
NOW = 1_800_000_000


def test_the_signature_is_hex_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == expected
    # Computed independently: printf "1.{}" | openssl dgst -sha256 -hmac key
    assert sign("key", 1, b"{}") == "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"


def test_a_right_signature_within_five_minutes_passes() -> None:
    signature = sign(SECRET, NOW, BODY)
    verify(SECRET, str(NOW), signature, BODY, NOW + TOLERANCE_S)
    verify(SECRET, str(NOW), signature.upper(), BODY, NOW - TOLERANCE_S)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "why"),
    [
        (str(NOW), sign("another-secret-0000", NOW, BODY), BODY, NOW, "does not match"),
        (str(NOW), sign(SECRET, NOW, BODY), BODY + b" ", NOW, "does not match"),
        (str(NOW + 1), sign(SECRET, NOW, BODY), BODY, NOW, "does not match"),
        (str(NOW), sign(SECRET, NOW, BODY), BODY, NOW + TOLERANCE_S + 1, "away from now"),
        (str(NOW), sign(SECRET, NOW, BODY), BODY, NOW - TOLERANCE_S - 1, "away from now"),
        (None, sign(SECRET, NOW, BODY), BODY, NOW, "missing"),
        (str(NOW), None, BODY, NOW, "missing"),
        ("yesterday", sign(SECRET, NOW, BODY), BODY, NOW, "epoch seconds"),
    ],
)
def test_anything_else_is_refused(
    timestamp: str | None, signature: str | None, body: bytes, now: int, why: str
) -> None:
    with pytest.raises(BadSignature, match=why):
        verify(SECRET, timestamp, signature, body, now)
