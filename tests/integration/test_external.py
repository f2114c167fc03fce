"""The payment provider and POS stubs keep their promises: nothing twice, money only as agreed."""

from typing import Any

import httpx

from tests.integration.conftest import Client


def pay(client: Client, path: str, key: str, body: Any = None) -> httpx.Response:
    return httpx.post(f"{client.settings.payment_url}{path}", json=body, headers={"Idempotency-Key": key})


def test_the_same_idempotency_key_authorizes_once(client: Client) -> None:
    body = {"orderId": "pay-once", "amount": 1234}

    first = pay(client, "/authorizations", "key-pay-once", body)
    second = pay(client, "/authorizations", "key-pay-once", body)

    assert first.status_code == second.status_code == 200
    # The same preparation (its ready report may have gone out in between).
    assert first.json() | {"reportedAt": None} == second.json() | {"reportedAt": None}
    assert client.payments("pay-once") == ["authorize"]
    assert client.net_paid("pay-once") == 0


def test_capture_then_refund_moves_the_money_there_and_back_once_each(client: Client) -> None:
    auth = pay(client, "/authorizations", "key-a", {"orderId": "pay-back", "amount": 500}).json()
    path = f"/authorizations/{auth['authorizationId']}"

    assert pay(client, f"{path}/capture", "key-c").status_code == 200
    assert pay(client, f"{path}/capture", "key-c").status_code == 200  # the same call again
    assert client.net_paid("pay-back") == 500
    assert pay(client, f"{path}/void", "key-v").status_code == 409  # captured money is refunded, not voided
    assert pay(client, f"{path}/refund", "key-r").status_code == 200

    assert client.payments("pay-back") == ["authorize", "capture", "refund"]
    assert client.net_paid("pay-back") == 0


def test_a_voided_authorization_cannot_be_captured(client: Client) -> None:
    auth = pay(client, "/authorizations", "key-a2", {"orderId": "pay-void", "amount": 700}).json()
    path = f"/authorizations/{auth['authorizationId']}"

    assert pay(client, f"{path}/void", "key-v2").status_code == 200
    refused = pay(client, f"{path}/capture", "key-c2")

    assert refused.status_code == 409
    assert "voided" in refused.text
    assert client.payments("pay-void") == ["authorize", "void"]


def test_a_payment_call_without_idempotency_key_is_refused(client: Client) -> None:
    response = httpx.post(f"{client.settings.payment_url}/authorizations", json={"orderId": "x", "amount": 1})

    assert response.status_code == 422
    assert "idempotency-key" in response.text.lower()


def test_preparing_the_same_order_twice_prepares_it_once_and_a_cancel_stops_it(client: Client) -> None:
    url = client.settings.pos_url
    body = {"orderId": "prep-once", "restaurantId": "mcstate"}

    first = httpx.post(f"{url}/prepare", json=body)
    second = httpx.post(f"{url}/prepare", json=body)
    keyless = httpx.post(f"{url}/cancel", json={"orderId": "prep-once"})
    cancels = [
        httpx.post(
            f"{url}/cancel", json={"orderId": "prep-once"}, headers={"Idempotency-Key": "stop-prep-once"}
        )
        for _ in range(2)
    ]

    assert first.status_code == second.status_code == 200
    # The same preparation (its ready report may have gone out in between).
    assert first.json() | {"reportedAt": None} == second.json() | {"reportedAt": None}
    assert keyless.status_code == 422 and "idempotency-key" in keyless.text.lower()
    assert [c.json()["state"] for c in cancels] == ["cancelled", "cancelled"]
    assert [p["state"] for p in client.preparations("prep-once")] == ["cancelled"]
    recorded = httpx.get(f"{url}/cancellations").json()["cancellations"]
    assert [c["idempotencyKey"] for c in recorded if c["orderId"] == "prep-once"] == ["stop-prep-once"]
