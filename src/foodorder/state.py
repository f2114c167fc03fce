"""Helpers for handlers: typed state keys (each names its type once), pydantic serdes, journaled time."""

import functools
import inspect
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

from pydantic import TypeAdapter
from restate import Context, ObjectContext, ObjectSharedContext, RunOptions
from restate.serde import Serde

T = TypeVar("T")
P = ParamSpec("P")


class PydanticSerde(Serde[T]):
    """JSON (camelCase) for any type pydantic understands: models, lists of models, enums, scalars."""

    def __init__(self, tp: Any) -> None:
        self.adapter: TypeAdapter[T] = TypeAdapter(tp)

    def deserialize(self, buf: bytes) -> T | None:
        return self.adapter.validate_json(buf) if buf else None

    def serialize(self, obj: T | None) -> bytes:
        return b"" if obj is None else self.adapter.dump_json(obj, by_alias=True)


def required(tp: Any) -> PydanticSerde[Any]:
    """Input serde for a handler whose argument may not be missing: an empty body is a terminal error.

    (The SDK turns a failed parse into a terminal error, so bad input never loops in retries.)
    """
    name = getattr(tp, "__name__", str(tp))

    class Required(PydanticSerde[Any]):
        def deserialize(self, buf: bytes) -> Any:
            if not buf:
                raise ValueError(f"request body is empty: expected {name}")
            return self.adapter.validate_json(buf)

    return Required(tp)


# A read handler's argument: nothing. Seed clients send `{}` with content-type JSON (axios' body).
Nothing = dict[str, Any] | None


class EmptyOrEmptyObject(Serde[None]):
    """Input of a read handler: an empty body, or `{}` as the seed's web UI sends it every second."""

    def deserialize(self, buf: bytes) -> None:
        if buf.strip() not in (b"", b"{}"):
            raise ValueError("this handler takes no input: send an empty body or {}")

    def serialize(self, obj: None) -> bytes:
        return b""


NO_INPUT = EmptyOrEmptyObject()


@dataclass(frozen=True)
class StateKey(Generic[T]):
    """A named entry of a virtual object's or workflow's state, with its type."""

    name: str
    tp: Any
    serde: PydanticSerde[T] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "serde", PydanticSerde(self.tp))

    async def get(self, ctx: ObjectContext | ObjectSharedContext) -> T | None:
        """The stored value, or None."""
        value: T | None = await ctx.get(self.name, serde=self.serde)
        return value

    def set(self, ctx: ObjectContext, value: T) -> None:
        """Store `value`."""
        ctx.set(self.name, value, serde=self.serde)

    def clear(self, ctx: ObjectContext) -> None:
        """Remove the entry."""
        ctx.clear(self.name)


def in_place(action: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """`action` as a coroutine function, for a step (`ctx.run_typed`) to run on the event loop.

    The SDK runs a step's plain function in a thread pool: a thread hand-off, and the GIL passed
    back and forth, for work that takes microseconds. A step's action here is a coroutine, or a
    plain function passed through this. The journal is the same either way (the step's name, and
    its value as the function's return annotation says).
    """

    if inspect.iscoroutinefunction(action):  # its value would be a coroutine, which no serde writes
        raise TypeError(f"{action.__name__} is a coroutine function already: pass it as it is")

    @functools.wraps(action)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return action(*args, **kwargs)

    return run


# The step's type, so that the SDK need not read wall_clock's signature at every reading.
CLOCK_STEP = RunOptions(type_hint=float)


async def wall_clock() -> float:
    """The current time in epoch seconds."""
    return time.time()


async def now_ms(ctx: Context) -> int:
    """The current time in epoch milliseconds, recorded in the journal so that a replay sees the same.

    The journal entry is the one `ctx.time()` writes ("timestamp", the seconds), without its thread
    hand-off (see `in_place`).
    """
    return int(await ctx.run_typed("timestamp", wall_clock, CLOCK_STEP) * 1000)


# A timer that fires later than this after it was due was held up by an outage (restate-server or
# the services down) or a stall; whoever it judges could not be heard meanwhile.
LATE_AFTER_MS = 5_000


def came_late(now: int, due: int) -> bool:
    """Whether a timer due at `due` and fired at `now` (epoch ms) was late: the system was not listening."""
    return now - due > LATE_AFTER_MS
