"""The public API refuses bad keys and bad input with a 4xx that names the problem, never a 5xx."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from foodorder.config import DEV_DRIVER_KEY, DEV_OPS_PASSWORD, DEV_PROVIDER_KEY, DEV_RESTAURANT_KEY, OPS_USER
from foodorder.stack import Stack, wait_until
from tests.integration.conftest import (
    ARTIFACTS,
    DRIVER_9_KEY,
    MCSTATE_KEY,
    Api,
    Client,
    api_order,
    stack_settings,
)

# (method, path, the right key, a key of another party that must not work here, and its answer)
ENDPOINTS = [
    ("POST", "/api/v1/orders", DEV_PROVIDER_KEY, DEV_DRIVER_KEY, 401),
    ("GET", "/api/v1/orders/x", DEV_PROVIDER_KEY, DEV_RESTAURANT_KEY, 401),
    ("GET", "/api/v1/orders/x/events", DEV_PROVIDER_KEY, DEV_DRIVER_KEY, 401),
    ("POST", "/api/v1/orders/x/cancel", DEV_PROVIDER_KEY, DEV_RESTAURANT_KEY, 401),
    ("POST", "/api/v1/restaurants/bites_n_bytes/orders/x/ready", DEV_RESTAURANT_KEY, MCSTATE_KEY, 403),
    ("POST", "/api/v1/restaurants/bites_n_bytes/orders/x/ready", DEV_RESTAURANT_KEY, DEV_PROVIDER_KEY, 401),
    ("POST", "/api/v1/drivers/driver-1/availability", DEV_DRIVER_KEY, DRIVER_9_KEY, 403),
    ("GET", "/api/v1/drivers/driver-1/assignment", DEV_DRIVER_KEY, DRIVER_9_KEY, 403),
    ("POST", "/api/v1/drivers/driver-1/pickup", DEV_DRIVER_KEY, DEV_PROVIDER_KEY, 401),
    ("POST", "/api/v1/drivers/driver-1/delivered", DEV_DRIVER_KEY, DRIVER_9_KEY, 403),
    ("POST", "/api/v1/drivers/driver-1/locations", DEV_DRIVER_KEY, DEV_RESTAURANT_KEY, 401),
]


@pytest.mark.parametrize(("method", "path", "right_key", "other_key", "other_status"), ENDPOINTS)
def test_every_endpoint_needs_its_own_partys_key(
    api: Api, method: str, path: str, right_key: str, other_key: str, other_status: int
) -> None:
    missing = api.request(method, path, key=None)
    wrong = api.request(method, path, key="not-a-key")
    other = api.request(method, path, key=other_key)

    assert missing.status_code == 401 and "missing API key" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert other.status_code == other_status, other.text


def detail_names(response: Any, *field: str | int) -> bool:
    return any(list(error["loc"][1:]) == list(field) for error in response.json()["detail"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"restaurantId": "nowhere"}, ["restaurantId"]),
        ({"products": [{"productId": "9999", "quantity": 1}]}, ["products", 0, "productId"]),
        ({"products": [{"productId": "1000", "quantity": 0}]}, ["products", 0, "quantity"]),
        ({"products": []}, ["products"]),
        ({"products": "pizza"}, ["products"]),
        ({"deliveryDelay": -5}, ["deliveryDelay"]),
        ({"deliveryDelay": "later"}, ["deliveryDelay"]),
        ({"totalCost": 1}, ["totalCost"]),
        ({"id": "has spaces/and slashes"}, ["id"]),
        ({"deliveryLocation": {"lat": 123, "long": 0}}, ["deliveryLocation", "lat"]),
        ({"surprise": True}, ["surprise"]),
    ],
)
def test_bad_orders_are_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: list[str | int]
) -> None:
    response = api.request("POST", "/api/v1/orders", json=api_order(**change))

    assert response.status_code == 422, response.text
    assert detail_names(response, *field), response.json()


def test_malformed_json_wrong_content_type_and_huge_bodies_are_refused(api: Api) -> None:
    malformed = api.request(
        "POST", "/api/v1/orders", content=b'{"id": ', headers={"content-type": "application/json"}
    )
    not_json = api.request("POST", "/api/v1/orders", content=b"id=1", headers={"content-type": "text/plain"})
    huge = api.request(
        "POST",
        "/api/v1/orders",
        content=b'{"id": "' + b"x" * 200_000 + b'"}',
        headers={"content-type": "application/json"},
    )

    assert malformed.status_code == 422 and "json" in malformed.text.lower()
    assert 400 <= not_json.status_code < 500
    assert huge.status_code == 413


def test_a_restaurant_can_only_mark_its_own_orders_ready(api: Api) -> None:
    order = api_order(deliveryDelay=3_600_000)  # stays SCHEDULED
    assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
    order_id = f"dev-provider:{order['id']}"

    elsewhere = api.request("POST", f"/api/v1/restaurants/mcstate/orders/{order_id}/ready", key=MCSTATE_KEY)
    unknown = api.request(
        "POST", "/api/v1/restaurants/bites_n_bytes/orders/nope/ready", key=DEV_RESTAURANT_KEY
    )

    assert elsewhere.status_code == 404
    assert unknown.status_code == 404


def test_a_driver_call_in_the_wrong_state_is_a_conflict(api: Api) -> None:
    response = api.request("POST", "/api/v1/drivers/driver-9/pickup", key=DRIVER_9_KEY)

    assert response.status_code == 409
    assert "expected DELIVERING" in response.json()["detail"]


def test_a_location_batch_forwards_its_newest_point(api: Api, client: Client) -> None:
    points = [{"lat": 37.33, "long": -121.89, "at": 1000}, {"lat": 37.34, "long": -121.88, "at": 3000}]

    accepted = api.request(
        "POST", "/api/v1/drivers/driver-9/locations", key=DRIVER_9_KEY, json={"points": points}
    )
    malformed = api.request(
        "POST", "/api/v1/drivers/driver-9/locations", key=DRIVER_9_KEY, json={"points": [{"lat": "north"}]}
    )

    assert accepted.status_code == 202 and accepted.json() == {"received": 2, "forwardedAt": 3000}
    assert malformed.status_code == 422
    newest = {"lat": 37.34, "long": -121.88}
    client.eventually(lambda: client.state("driver-digital-twin", "driver-9", "driver-location"), newest)


def test_the_api_answers_503_at_once_when_restate_is_unreachable(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)  # free ports: no restate-server listens on its ingress
    stack = Stack(settings, log_dir=ARTIFACTS / "logs" / "no-restate")
    try:
        stack.start_python("gateway")
        wait_until(lambda: httpx.get(f"{settings.gateway_url}/healthz").is_success, "gateway")
        api = Api(settings)
        order = api.request("GET", "/api/v1/orders/x", key=DEV_PROVIDER_KEY)
        ready = api.request("GET", "/readyz", key=None)
        api.http.close()
    finally:
        stack.stop()

    assert order.status_code == 503
    assert "order engine unreachable" in order.json()["detail"]
    assert ready.status_code == 503


def test_the_operations_pages_ask_for_the_ops_password(api: Api) -> None:
    anonymous = api.request("GET", "/ops", key=None)
    wrong = api.http.get("/ops/events", auth=(OPS_USER, "guess"))
    right = api.http.get("/ops", auth=(OPS_USER, DEV_OPS_PASSWORD))
    data = [api.request("GET", path, key=None) for path in ("/ops/snapshot", "/metrics")]

    assert anonymous.status_code == wrong.status_code == 401
    assert [response.status_code for response in data] == [401, 401]
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert right.status_code == 200 and "Operations" in right.text
