"""Calls from the gateway to the Restate ingress."""

import contextlib
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import HTTPException

from foodorder import telemetry
from foodorder.clients.restate import RestateApi

# The ingress' answer for the output of a workflow that is still running.
NOT_READY = 470


def concerning(service: str, key: str) -> contextlib.AbstractContextManager[None]:
    """A call on one of an order's services concerns that order (its spans and logs name it)."""
    return telemetry.about_order(key) if service in telemetry.ORDER_SERVICES else contextlib.nullcontext()


class Ingress(RestateApi):
    """Request-response calls and one-way sends to handlers, by "service", key and handler name, on the
    ingress of each Restate node in turn (see RestateApi).

    Long waits need one connection each (`connections`): HTTP/1.1, as the client speaks. HTTP/2 would
    share a few, but httpx failed requests on a connection the ingress had closed (GOAWAY) when
    thousands of streams opened at once.
    """

    @staticmethod
    def path(service: str, key: str, handler: str) -> str:
        return f"/{service}/{quote(key, safe='')}/{handler}"

    async def call(
        self,
        service: str,
        key: str,
        handler: str,
        body: Any = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Invoke and wait for the result; a terminal error of the handler becomes the same HTTP error."""
        with concerning(service, key):
            response = await self.request(
                "POST",
                self.path(service, key, handler),
                json=body,
                timeout=timeout_s,
                headers=self._headers(idempotency_key),
            )
        return self._result(response)

    async def send(
        self,
        service: str,
        key: str,
        handler: str,
        body: Any = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Enqueue an invocation without waiting for it (`headers` reach the handler)."""
        with concerning(service, key):
            response = await self.request(
                "POST",
                self.path(service, key, handler) + "/send",
                json=body,
                headers=self._headers(idempotency_key, headers),
            )
        return self._result(response)

    @staticmethod
    def _headers(idempotency_key: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The request's headers: `extra`, and Restate's idempotency key when there is one."""
        headers = dict(extra or {})
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        return headers

    async def workflow_started(self, workflow: str, key: str) -> bool:
        """Whether the workflow `key` was started (running or done): a lookup, not an invocation."""
        response = await self.request("GET", f"/restate/workflow/{workflow}/{quote(key, safe='')}/output")
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
