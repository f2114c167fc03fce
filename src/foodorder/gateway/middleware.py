"""Request bodies at the public gateway: not too large (413), and not trickling forever (408).

Both answers are JSON like every other error (Starlette's own body limit answers 413 in plain text).
"""

import asyncio

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyGuard:
    """A request's body must be at most `max_bytes` and arrive within `timeout_s` of its head."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else Headers()
        length = headers.get("content-length")
        if length is None and "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)  # no body (a GET, an event stream): nothing to guard
            return
        declared = int(length) if length is not None else 0
        loop = asyncio.get_running_loop()
        deadline, size, complete = loop.time() + self.timeout_s, 0, False

        async def guarded() -> Message:
            nonlocal size, complete
            if complete:  # after the body, receive() waits for the disconnect: no deadline then
                return await receive()
            # Raised while the route reads its body, so that the app answers it like any HTTP error.
            if declared > self.max_bytes:
                raise self.too_large()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except TimeoutError:
                detail = f"the request body did not arrive within {self.timeout_s:g} s"
                raise HTTPException(408, detail, {"Connection": "close"}) from None
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise self.too_large()
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, guarded, send)

    def too_large(self) -> HTTPException:
        return HTTPException(413, f"the request body is larger than {self.max_bytes} bytes")
