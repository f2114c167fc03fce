"""Retry policies: how long a step is retried before its stage is given up."""

from foodorder.ordering.steps import RetryPolicy
from foodorder.ordering.workflow import AUTHORIZE, CAPTURE, PREPARE, UNDO


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=6, first_backoff_s=2, max_backoff_s=10)
    assert [policy.backoff_s(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    assert policy.patience_s == 34  # five waits between six tries


def test_each_stage_is_more_patient_than_the_one_it_protects() -> None:
    # Undoing outlasts everything it undoes; the capture outlasts the forward steps.
    assert AUTHORIZE.patience_s < PREPARE.patience_s < CAPTURE.patience_s < UNDO.patience_s
    assert 60 <= AUTHORIZE.patience_s <= 600
