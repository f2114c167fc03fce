"""One-way sends to the Restate ingress, as an outside system (a phone, a POS) makes them."""

import httpx

from foodorder.clients.http import check_response


async def send(
    client: httpx.AsyncClient,
    ingress_url: str,
    target: str,
    body: object,
    idempotency_key: str,
) -> None:
    """Durably enqueue an invocation of `target` ("service/key/handler"); Restate dedupes by the key."""
    response = await client.post(
        f"{ingress_url}/{target}/send",
        json=body,
        headers={"idempotency-key": idempotency_key},
    )
    check_response(response, f"restate ingress ({target})")
