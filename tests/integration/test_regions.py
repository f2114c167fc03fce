"""Regions: restaurants of three regions, each order delivered by a driver of its own region.

On the session stack, whose simulated drivers start their shifts in the regions in turn.
"""

from concurrent.futures import ThreadPoolExecutor

from foodorder.models import Status
from tests.integration.conftest import Api, Client, api_order


def test_an_order_from_each_region_is_delivered_by_a_driver_of_that_region(api: Api, client: Client) -> None:
    restaurants = api.request("GET", "/api/v1/restaurants", key=None).json()
    by_region = {shop["region"]: shop["id"] for shop in restaurants}
    assert {"san-jose", "san-francisco", "oakland"} <= set(by_region)

    orders = {region: api_order(restaurantId=shop) for region, shop in by_region.items()}
    for order in orders.values():
        assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
    with ThreadPoolExecutor(len(orders)) as pool:
        delivered = pool.map(lambda o: api.wait_for(o["id"], Status.DELIVERED), orders.values())
        views = dict(zip(orders, delivered, strict=True))

    for region, view in views.items():
        assert view["region"] == region
        assigned = [h["reason"] for h in view["history"] if h["status"] == "WAITING_FOR_DRIVER"]
        driver = assigned[-1].removeprefix("driver ")
        assert client.state("driver-digital-twin", driver, "region") == region, (region, driver)
