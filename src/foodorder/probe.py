"""engine-probe: a handler that does nothing, so `foodorder bench` can measure the engine's own ceiling."""

from restate import Context, Service

engine_probe = Service("engine-probe")


@engine_probe.handler()
async def noop(ctx: Context) -> None:
    """Return at once: the cost of an invocation through restate-server and the services endpoint."""
