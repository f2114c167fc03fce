"""Steps retry what may pass (no answer, 408, 429, 5xx), give up on what cannot, and yield to a cancel.

The POS stub answers /prepare with a fixed status for orders with certain products, so that each
test decides how the kitchen's system misbehaves. Whatever happens, the money is released.
"""

import time
from collections.abc import Iterator
from typing import Any

import pytest

from foodorder.models import Status
from tests.integration.test_unhappy_paths import Party, party_on

UNAVAILABLE, RATE_LIMITED, BAD_REQUEST = "1000", "1001", "1002"  # products the POS fails for
FAILING = {UNAVAILABLE: 503, RATE_LIMITED: 429, BAD_REQUEST: 400}


def one_of(product: str) -> dict[str, Any]:
    return {"restaurantId": "bites_n_bytes", "products": [{"productId": product, "quantity": 1}]}


@pytest.fixture(scope="module")
def failing_pos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Party]:
    """A POS that fails some orders, at a time scale where a step's retries last seconds."""
    yield from party_on(
        tmp_path_factory.mktemp("failing"), "failing-pos", pos_failing_products=FAILING, time_scale=100
    )


@pytest.fixture(scope="module")
def failing_pos_real_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Party]:
    """The same POS in real time: preparing an order is retried for about 8 minutes."""
    yield from party_on(
        tmp_path_factory.mktemp("failing-1x"), "failing-pos-1x", pos_failing_products=FAILING, time_scale=1
    )


def ended(party: Party, ref: str, wanted: Status = Status.CANCELLED) -> tuple[str, str | None]:
    """The order's final status and reason, once it has one; the money was released."""
    party.api.wait_for(ref, wanted)
    assert party.payments(ref) == ["authorize", "void"]
    assert party.net_paid(ref) == 0
    return party.history(ref)[-1]


def reason_code(party: Party, ref: str) -> str:
    code: str = party.api.request("GET", f"/api/v1/orders/{ref}").json()["history"][-1]["reasonCode"]
    return code


@pytest.mark.parametrize(("product", "status"), [(UNAVAILABLE, 503), (RATE_LIMITED, 429)])
def test_a_step_that_keeps_failing_is_retried_then_given_up_and_undone(
    failing_pos: Party, product: str, status: int
) -> None:
    ref = failing_pos.order(**one_of(product))

    final, reason = ended(failing_pos, ref, Status.REJECTED)

    assert final == "REJECTED"
    assert reason_code(failing_pos, ref) == "POS_UNREACHABLE"
    assert reason is not None
    assert reason.startswith(
        "the restaurant's POS did not take the order: prepare at restaurant: gave up after 10 tries"
    )
    assert f"restaurant POS answered {status}" in reason
    assert failing_pos.kitchen(ref) == []


def test_a_final_answer_is_not_retried(failing_pos: Party) -> None:
    ref = failing_pos.order(**one_of(BAD_REQUEST))

    final, reason = ended(failing_pos, ref, Status.REJECTED)

    assert final == "REJECTED"
    assert reason_code(failing_pos, ref) == "OTHER"
    assert reason is not None and "gave up" not in reason
    assert reason.startswith(
        "the restaurant's POS did not take the order: prepare at restaurant: restaurant POS answered 400"
    )


def test_a_cancel_wins_within_seconds_while_a_step_retries(failing_pos_real_time: Party) -> None:
    party = failing_pos_real_time
    ref = party.order(**one_of(UNAVAILABLE))
    party.api.wait_for(ref, Status.SCHEDULED)

    started = time.monotonic()
    response = party.cancel(ref, "the kitchen's system is down")
    took_s = time.monotonic() - started

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    assert took_s < 20, f"the cancel waited {took_s:.0f} s for a step retrying for 8 minutes"
    assert ended(party, ref) == ("CANCELLED", "the kitchen's system is down")
