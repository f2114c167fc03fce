"""Retry policies: how long a step is retried before its stage is given up; a step's plain
function run on the event loop."""

import asyncio
import functools
import inspect

import pytest

from foodorder.models import Order, OrderTerms
from foodorder.ordering.steps import RetryPolicy
from foodorder.ordering.workflow import AUTHORIZE, CAPTURE, PREPARE, UNDO, order_terms
from foodorder.state import in_place


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=6, first_backoff_s=2, max_backoff_s=10)
    assert [policy.backoff_s(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    assert policy.patience_s == 34  # five waits between six tries


def test_each_stage_is_more_patient_than_the_one_it_protects() -> None:
    # Undoing outlasts everything it undoes; the capture outlasts the forward steps.
    assert AUTHORIZE.patience_s < PREPARE.patience_s < CAPTURE.patience_s < UNDO.patience_s
    assert 60 <= AUTHORIZE.patience_s <= 600


def test_a_plain_step_runs_in_place_with_the_value_and_type_it_journals() -> None:
    step = in_place(order_terms)
    products = [{"productId": "1002", "quantity": 1}]
    order = Order.model_validate(
        {"id": "o1", "restaurantId": "mcstate", "products": products, "totalCost": 850}
    )
    # The SDK runs a step in place only if it is a coroutine function (seen through the partial it
    # makes), and picks the step's serde from its return annotation, as it would from order_terms.
    assert inspect.iscoroutinefunction(functools.partial(step, order=order))
    assert inspect.signature(step, eval_str=True).return_annotation is OrderTerms
    terms = asyncio.run(step(order=order))  # (a customer without a location is placed at random)
    assert isinstance(terms, OrderTerms) and terms.price == order_terms(order).price == 850


def test_a_coroutine_function_is_refused_rather_than_journaled_as_a_coroutine() -> None:
    async def already() -> int:
        return 1

    with pytest.raises(TypeError, match="already"):
        in_place(already)
