"""Calls from the gateway to the Restate ingress."""

import contextlib
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import HTTPException

from foodorder import telemetry

CONNECTIONS = 16
# The ingress' answer for the output of a workflow that is still running.
NOT_READY = 470


def concerning(service: str, key: str) -> contextlib.AbstractContextManager[None]:
    """A call on one of an order's services concerns that order (its spans and logs name it)."""
    return telemetry.about_order(key) if service in telemetry.ORDER_SERVICES else contextlib.nullcontext()


class Ingress:
    """Request-response calls and one-way sends to handlers, by "service", key and handler name.

    With several Restate nodes it uses one node's ingress until that node refuses connections, then
    the next one's: any node's ingress takes any invocation (it forwards it to the partition's
    leader), so spreading the calls would buy nothing on one machine, while staying on one node
    keeps the pooled connections warm. A refused connection reached no node, so every call may be
    retried on the next; a call cut off mid-way fails as before (503), and the client retries.
    """

    def __init__(self, ingress_urls: list[str], timeout_s: float, connections: int = CONNECTIONS) -> None:
        # Few connections, many requests each: httpx's pool costs CPU with every connection it holds
        # (`foodorder bench` showed throughput halving from 16 to 64 connections). Long waits need one
        # connection each: HTTP/2 would share a few, but httpx fails requests on a connection the
        # ingress has closed (GOAWAY) when thousands of streams open at once.
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(timeout=timeout_s, limits=limits)
        self.urls = ingress_urls
        self.current = 0  # the index in `urls` of the node in use

    @staticmethod
    def path(service: str, key: str, handler: str) -> str:
        return f"/{service}/{quote(key, safe='')}/{handler}"

    async def call(
        self, service: str, key: str, handler: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        """Invoke and wait for the result; a terminal error of the handler becomes the same HTTP error."""
        timeout = self.http.timeout if timeout_s is None else httpx.Timeout(timeout_s)
        with concerning(service, key):
            response = await self._request(
                "POST", self.path(service, key, handler), json=body, timeout=timeout
            )
        return self._result(response)

    async def send(
        self, service: str, key: str, handler: str, body: Any = None, idempotency_key: str | None = None
    ) -> Any:
        """Enqueue an invocation without waiting for it."""
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        with concerning(service, key):
            response = await self._request(
                "POST", self.path(service, key, handler) + "/send", json=body, headers=headers
            )
        return self._result(response)

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`method` `path` on the node in use; on a refused connection, on the next node."""
        refused = 0
        while True:
            node = self.current
            try:
                return await self.http.request(method, self.urls[node] + path, **kwargs)
            except httpx.ConnectError:
                refused += 1
                if refused == len(self.urls):
                    raise
                if self.current == node:  # not moved on already by a concurrent call
                    self.current = (node + 1) % len(self.urls)

    async def workflow_started(self, workflow: str, key: str) -> bool:
        """Whether the workflow `key` was started (running or done): a lookup, not an invocation."""
        response = await self._request("GET", f"/restate/workflow/{workflow}/{quote(key, safe='')}/output")
        if response.status_code == 404:
            return False
        if response.status_code in (200, NOT_READY) or 400 <= response.status_code < 500:
            return True
        raise HTTPException(status_code=503, detail=f"order engine unavailable ({response.status_code})")

    @staticmethod
    def _result(response: httpx.Response) -> Any:
        if response.is_success:
            return response.json() if response.content else None
        if 400 <= response.status_code < 500:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise HTTPException(status_code=response.status_code, detail=message)
        raise HTTPException(status_code=503, detail=f"order engine unavailable ({response.status_code})")

    async def close(self) -> None:
        await self.http.aclose()
