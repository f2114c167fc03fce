"""Durable steps with a retry policy of their own, retried by the workflow so a cancellation can cut in.

A step's call to the outside world runs inside `ctx.run`, so its outcome is journaled and a replay
never calls again. The outcome of each try is journaled too: a transient failure (no answer, 408,
429, 5xx) comes back as a value, and the workflow waits out the backoff with a durable timer that a
cancellation interrupts, instead of Restate retrying the step out of the workflow's sight. A final
answer (another 4xx, a malformed answer) fails the step at once.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import restate
from restate import RestateDurableFuture, RunOptions, TerminalError, WorkflowContext

from foodorder.clients.http import Transient
from foodorder.models import Model, epoch_ms

# Exceptions other than Transient and TerminalError are bugs: a few tries, then the step fails for good.
UNEXPECTED_ERROR_ATTEMPTS = 3


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a step is tried: `attempts` tries, the backoff doubling up to a cap."""

    attempts: int
    first_backoff_s: float
    max_backoff_s: float

    def backoff_s(self, tried: int) -> float:
        """Seconds to wait after the `tried`-th failed try."""
        return float(min(self.max_backoff_s, self.first_backoff_s * 2 ** (tried - 1)))

    @property
    def patience_s(self) -> float:
        """The longest the retries wait in total before the step fails for good."""
        return sum(self.backoff_s(n) for n in range(1, self.attempts))


class StepFailed(Exception):
    """A step failed for good: a final answer, or every try of its policy failed (`gave_up`)."""

    def __init__(self, message: str, gave_up: bool = False) -> None:
        super().__init__(message)
        self.gave_up = gave_up


class Interrupted(Exception):
    """A cancellation arrived while a step waited to try again; carries its reason."""


class Try(Model):
    """The journaled outcome of one try of a step: its value, or why it is worth trying again, and
    when it was known (so that a status it leads to needs no journaled clock reading of its own;
    None in a try journaled before it was kept, when the status reads the clock as it did then)."""

    value: Any = None
    retry: str | None = None
    at: int | None = None


async def try_once(action: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Try:
    """Call `action` once; a transient failure becomes a value rather than an exception."""
    try:
        value = await action(**kwargs)
    except Transient as error:
        return Try(retry=str(error), at=epoch_ms())
    return Try(value=value, at=epoch_ms())


async def durable_step(
    ctx: WorkflowContext,
    name: str,
    policy: RetryPolicy,
    time_scale: float,
    action: Callable[..., Awaitable[Any]],
    interrupt: Callable[[], RestateDurableFuture[str]] | None = None,
    **kwargs: Any,
) -> Try:
    """Run `action(**kwargs)` as the durable step `name`, retried per `policy`; the try that
    succeeded (its value, and when).

    Raises StepFailed when the step fails for good and Interrupted when `interrupt` completes during
    a backoff. Backoffs are divided by `time_scale` like every simulated duration.
    """
    options: RunOptions[Try] = RunOptions(type_hint=Try, max_attempts=UNEXPECTED_ERROR_ATTEMPTS)
    for tried in range(1, policy.attempts + 1):
        try:
            outcome = await ctx.run_typed(name, try_once, options, action=action, kwargs=kwargs)
        except TerminalError as error:
            raise StepFailed(f"{name}: {error.message}") from error
        if outcome.retry is None:
            return outcome
        if tried == policy.attempts:
            raise StepFailed(f"{name}: gave up after {tried} tries: {outcome.retry}", gave_up=True)
        backoff = ctx.sleep(timedelta(seconds=policy.backoff_s(tried) / time_scale), name=f"{name} backoff")
        if interrupt is None:
            await backoff
            continue
        which, reason = await restate.select(retry=backoff, interrupt=interrupt())
        if which == "interrupt":
            raise Interrupted(reason)
    raise AssertionError("unreachable: the last try returns or raises")
