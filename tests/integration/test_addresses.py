"""The processes find each other at the URLs they are given (FOODORDER_*_URL), not at host and port.

One stack whose payment provider and POS run elsewhere (on ports of their own, started apart), and
whose gateway is told where Restate is while the ports it would derive the addresses from are
wrong: every order that gets through shows that each process used the URL it was given.
"""

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import AnyHttpUrl

from foodorder.config import DEV_OPS_PASSWORD, OPS_USER
from foodorder.models import Status
from foodorder.stack import Stack, free_port, wait_until
from tests.integration.conftest import (
    ARTIFACTS,
    Api,
    Client,
    api_of,
    api_order,
    running_stack,
    stack_settings,
)


class Elsewhere:
    """The stack that takes its payment provider and POS from URLs, the two running outside it, and a
    port nobody listens on (what the gateway would reach if it ignored its URLs)."""

    def __init__(self, stack: Stack, outside: Stack, nobody: int) -> None:
        self.stack, self.outside, self.nobody = stack, outside, nobody


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Elsewhere]:
    settings = stack_settings(tmp_path_factory.mktemp("elsewhere"))
    nobody = free_port()
    # The outside POS reports ready orders at its gateway URL: its own gateway port leads nowhere.
    outside = Stack(
        settings.model_copy(
            update={
                "data_dir": Path(tmp_path_factory.mktemp("outside")),
                "payment_port": free_port(),
                "pos_port": free_port(),
                "gateway_port": nobody,
                "gateway_url_setting": AnyHttpUrl(settings.gateway_url),
            }
        ),
        log_dir=ARTIFACTS / "logs" / "addresses-outside",
    )
    try:
        for name in ("payment", "pos"):
            outside.start_python(name)
        for url in (outside.settings.payment_url, outside.settings.pos_url):
            wait_until(functools.partial(answers, f"{url}/healthz"), url)
        given = settings.model_copy(
            update={
                "payment_url_setting": AnyHttpUrl(outside.settings.payment_url),
                "pos_url_setting": AnyHttpUrl(outside.settings.pos_url),
            }
        )
        with running_stack(given, "addresses") as stack:
            yield Elsewhere(stack, outside, nobody)
    finally:
        outside.stop()


def answers(url: str) -> bool:
    return httpx.get(url).is_success


def ops_snapshot(api: Api) -> dict[str, Any]:
    response = api.http.get("/ops/snapshot", auth=(OPS_USER, DEV_OPS_PASSWORD))
    assert response.status_code == 200, response.text
    snapshot: dict[str, Any] = response.json()
    return snapshot


def test_orders_go_to_the_payment_provider_and_pos_at_their_urls(elsewhere: Elsewhere) -> None:
    settings = elsewhere.stack.settings
    assert {"payment", "pos"}.isdisjoint(elsewhere.stack.processes)  # no stubs of its own
    with api_of(settings) as api, Client(settings) as client:  # the client's ledger: the outside one
        order = api_order()
        response = api.request("POST", "/api/v1/orders", json=order)
        assert response.status_code == 202, response.text
        api.wait_for(order["id"], Status.DELIVERED)
        key = f"dev-provider:{order['id']}"
        assert client.payments(key) == ["authorize", "capture"]
        assert [p["orderId"] for p in client.preparations(key)] == [key]


def test_the_gateway_reads_the_admin_api_on_the_next_url_when_the_first_refuses(elsewhere: Elsewhere) -> None:
    stack, nobody = elsewhere.stack, elsewhere.nobody
    refusing = f"http://127.0.0.1:{free_port()}"
    # The ports the gateway would derive Restate's addresses from lead nowhere: only the URLs work.
    stack.restart(
        "gateway",
        {
            "FOODORDER_ADMIN_PORT": str(nobody),
            "FOODORDER_INGRESS_PORT": str(nobody),
            "FOODORDER_RESTATE_ADMIN_URLS": json.dumps([refusing, stack.settings.local_admin_urls[0]]),
            "FOODORDER_RESTATE_INGRESS_URLS": json.dumps([refusing, stack.settings.local_ingress_urls[0]]),
        },
    )
    with api_of(stack.settings) as api:
        assert api.http.get("/readyz").status_code == 200
        order = api_order(deliveryDelay=3_600_000)  # SCHEDULED for an hour: in flight while we look
        response = api.request("POST", "/api/v1/orders", json=order)
        assert response.status_code == 202, response.text
        api.wait_for(order["id"], Status.SCHEDULED)
        key = f"dev-provider:{order['id']}"
        wait_until(lambda: key in [o["id"] for o in ops_snapshot(api)["activeOrders"]], f"{key} on /ops")
        # The order counts come from the admin API too (503 if no admin URL answered).
        assert api.http.get("/metrics", auth=(OPS_USER, DEV_OPS_PASSWORD)).status_code == 200
        cancelled = api.request("POST", f"/api/v1/orders/{order['id']}/cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
