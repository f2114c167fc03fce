"""Stopping every process and starting again resumes the orders in flight, without charging twice or
judging anyone on the outage."""

import json
import signal
import time
from pathlib import Path
from typing import Any

from foodorder import geo, introspection
from foodorder.catalog import load_catalog
from foodorder.models import Status
from tests.integration.conftest import (
    Api,
    Client,
    api_order,
    new_order,
    running_stack,
    stack_settings,
    start_up,
)


def test_an_order_in_flight_survives_a_full_restart(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    order = new_order(deliveryDelay=100_000)  # 5 s of wall time at the tests' time scale

    with running_stack(settings, "restart-1"), Client(settings) as client:
        client.submit(order)
        client.wait_for(order["id"], Status.SCHEDULED, timeout_s=30)

    with running_stack(settings, "restart-2"), Client(settings) as client:
        client.wait_for(order["id"], Status.DELIVERED, timeout_s=120)
        assert client.payments(order["id"]) == ["authorize", "capture"]
        assert len(client.preparations(order["id"])) == 1
        assert [e["status"] for e in client.history(order["id"])][-1] == "DELIVERED"


def test_an_outage_longer_than_every_timeout_cancels_nothing_and_replaces_no_driver(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path).model_copy(
        update={
            "preparation_s": 100,  # 5 s of wall time
            "restaurant_timeout_s": 200,  # 10 s
            "driver_search_timeout_s": 200,  # 10 s
            "driver_silence_timeout_s": 120,  # 6 s
            "driver_speed_mps": 10,  # a driver takes seconds to reach the restaurant
        }
    )
    timeouts = (
        settings.restaurant_timeout_s,
        settings.driver_search_timeout_s,
        settings.driver_silence_timeout_s,
    )
    outage_s = max(settings.scaled(t) for t in timeouts) + 3

    def near(restaurant: str) -> dict[str, Any]:
        """An order delivered 200 m from its restaurant, so that the test does not wait for long drives."""
        shop = load_catalog().restaurant(restaurant)
        assert shop is not None
        customer = geo.offset(shop.location, 200, 0).model_dump(mode="json")
        return api_order(restaurantId=restaurant, deliveryLocation=customer)

    up = start_up(settings, "outage-1")
    try:
        api = Api(settings)
        waiting = near("bites_n_bytes")
        assert api.request("POST", "/api/v1/orders", json=waiting).status_code == 202
        api.wait_for(waiting["id"], Status.WAITING_FOR_DRIVER)
        preparing = near("mcstate")
        assert api.request("POST", "/api/v1/orders", json=preparing).status_code == 202
        api.wait_for(preparing["id"], Status.IN_PREPARATION)
        api.http.close()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
    finally:
        up.kill()
        up.wait()

    time.sleep(outage_s)  # the outage itself: longer than any timeout, at the tests' time scale

    up = start_up(settings, "outage-2")
    try:
        api = Api(settings)
        for order in (waiting, preparing, near("snack_in_the_box")):
            if order is not waiting and order is not preparing:
                assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
            view = api.wait_for(order["id"], Status.DELIVERED, timeout_s=120)
            reasons = [h["reason"] for h in view["history"] if h["reason"]]
            assert not [r for r in reasons if "silent" in r or "in time" in r], reasons
            assert [h["status"] for h in view["history"]][-3:] == [
                "WAITING_FOR_DRIVER",
                "IN_DELIVERY",
                "DELIVERED",
            ]
        api.http.close()
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)


def test_new_settings_and_a_new_menu_leave_the_orders_in_flight_on_their_terms(tmp_path: Path) -> None:
    # 60 s to report ready: the kitchen's report waits for the gateway, which a loaded machine restarts
    # in 20 s or more (the timer is not late then: the services were back before the gateway).
    settings = stack_settings(tmp_path).model_copy(
        update={"preparation_s": 100, "restaurant_timeout_s": 1200}
    )
    scheduled, preparing = new_order(deliveryDelay=100_000), new_order()  # due in 5 s; cooking for 5 s

    with running_stack(settings, "terms-1"), Client(settings) as client:
        for order in (scheduled, preparing):
            client.submit(order)
        client.wait_for(scheduled["id"], Status.SCHEDULED)
        client.wait_for(preparing["id"], Status.IN_PREPARATION)

    # The ordered pizza leaves the menu and the timeouts become impossible to meet.
    catalog = load_catalog().model_dump(mode="json")
    for shop in catalog["restaurants"]:
        shop["menu"] = [item for item in shop["menu"] if item["id"] != "1000"]
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    changed = settings.model_copy(
        update={
            "catalog_file": tmp_path / "catalog.json",
            "restaurant_timeout_s": 0.1,
            "driver_search_timeout_s": 0.1,
        }
    )

    with running_stack(changed, "terms-2"), Client(changed) as client:
        for order in (scheduled, preparing):
            client.wait_for(order["id"], Status.DELIVERED, timeout_s=120)
        query = "SELECT target, last_failure FROM sys_invocation WHERE last_failure LIKE '%mismatch%'"
        assert introspection.query_blocking(changed.admin_url, query) == []
        refused = new_order()
        client.submit(refused)
        client.wait_for(refused["id"], Status.REJECTED)  # new orders meet the new menu
