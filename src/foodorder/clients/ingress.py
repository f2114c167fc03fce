"""One-way sends to the Restate ingress, as an outside system (a phone, a POS) makes them."""

from datetime import timedelta

import httpx

from foodorder.clients.http import check_response


async def send(
    client: httpx.AsyncClient,
    ingress_url: str,
    target: str,
    body: object,
    idempotency_key: str,
    delay: timedelta | None = None,
) -> None:
    """Durably enqueue an invocation of `target` ("service/key/handler"); Restate dedupes by the key."""
    params = {"delay": f"{int(delay.total_seconds() * 1000)}ms"} if delay else None
    response = await client.post(
        f"{ingress_url}/{target}/send",
        json=body,
        params=params,
        headers={"idempotency-key": idempotency_key},
    )
    check_response(response, f"restate ingress ({target})")
