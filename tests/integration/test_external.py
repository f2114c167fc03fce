"""The payment provider and POS stubs keep their promises: no double charge, no double preparation."""

import httpx

from tests.integration.conftest import Client


def test_the_same_idempotency_key_charges_once(client: Client) -> None:
    url = f"{client.settings.payment_url}/charges"
    body = {"orderId": "pay-once", "amount": 1234}
    headers = {"Idempotency-Key": "key-pay-once"}

    first = httpx.post(url, json=body, headers=headers)
    second = httpx.post(url, json=body, headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert [(c["amount"], c["outcome"]) for c in client.ledger("pay-once")] == [(1234, "charged")]


def test_a_charge_without_idempotency_key_is_refused(client: Client) -> None:
    response = httpx.post(f"{client.settings.payment_url}/charges", json={"orderId": "x", "amount": 1})

    assert response.status_code == 422
    assert "idempotency-key" in response.text.lower()


def test_preparing_the_same_order_twice_prepares_it_once(client: Client) -> None:
    url = f"{client.settings.pos_url}/prepare"

    body = {"orderId": "prep-once", "restaurantId": "mcstate"}
    first = httpx.post(url, json=body)
    second = httpx.post(url, json=body)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(client.preparations("prep-once")) == 1
