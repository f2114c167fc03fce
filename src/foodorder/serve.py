"""Run an ASGI app under hypercorn until SIGINT or SIGTERM."""

import asyncio
import signal
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config


def serve(app: Any, host: str, port: int) -> None:
    """Serve `app` on host:port (HTTP/1.1 and HTTP/2 cleartext) in the foreground."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 3

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)

    asyncio.run(main())
