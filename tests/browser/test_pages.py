"""What a customer and an operator see in the browser, against the real stack."""

import re
import time
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from foodorder.config import DEV_RESTAURANT_KEY
from tests.browser.conftest import screenshot
from tests.integration.test_order_flow import DELIVERED_SEQUENCE

DELIVERY_TIMEOUT_MS = 120_000


def fill_cart(page: Page, restaurant: str, items: dict[str, int]) -> None:
    page.goto("/")
    page.get_by_role("tab", name=restaurant).click()
    for name, quantity in items.items():
        for _ in range(quantity):
            page.get_by_role("button", name=f"add {name}", exact=True).click()


def checkout(page: Page) -> str:
    """Check out and land on the order's page; its URL."""
    page.get_by_role("button", name="Check out").click()
    page.wait_for_url(re.compile(r"/orders/[0-9a-f]{32}$"))
    return page.url


def test_an_order_placed_in_the_storefront_is_followed_on_the_map_until_delivered(page: Page) -> None:
    fill_cart(page, "Snack in the Box", {"Pepperoni pizza": 2, "Lemonade": 1})
    page.get_by_role("button", name="one less Pepperoni pizza").click()
    expect(page.get_by_test_id("total")).to_have_text("$14.40")  # 1 x 10.90 + 1 x 3.50, priced by the server
    screenshot(page, "storefront")

    checkout(page)
    status = page.get_by_test_id("status")
    driver = page.locator("[data-marker=driver]")
    expect(driver).to_be_attached(timeout=DELIVERY_TIMEOUT_MS)
    positions = set()
    deadline = time.monotonic() + DELIVERY_TIMEOUT_MS / 1000
    while status.get_attribute("data-status") != "DELIVERED" and time.monotonic() < deadline:
        positions.add((driver.get_attribute("data-lat"), driver.get_attribute("data-long")))
        page.wait_for_timeout(200)

    expect(status).to_have_attribute("data-status", "DELIVERED")
    expect(status).to_have_text("Delivered")
    assert len(positions) >= 3, f"the driver marker did not move: {positions}"
    timeline = page.get_by_test_id("timeline").locator("li")
    assert [li.get_attribute("data-status") for li in timeline.all()] == DELIVERED_SEQUENCE
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    screenshot(page, "order-delivered")

    page.reload()
    expect(status).to_have_attribute("data-status", "DELIVERED")
    expect(timeline).to_have_count(len(DELIVERED_SEQUENCE))


def test_a_declined_payment_shows_the_order_rejected_with_its_reason_on_a_phone(phone: Page) -> None:
    fill_cart(phone, "McState", {"Sushi box": 57})  # 57 x $17.60 is above the payment stub's limit

    checkout(phone)

    expect(phone.get_by_test_id("status")).to_have_attribute("data-status", "REJECTED", timeout=30_000)
    expect(phone.get_by_test_id("status")).to_have_text("Rejected")
    expect(phone.get_by_test_id("reason")).to_have_text("Reason: payment declined")
    expect(phone.get_by_test_id("cancel")).to_be_hidden()
    screenshot(phone, "order-rejected-phone")


def test_the_cancel_button_cancels_an_order_scheduled_for_later(page: Page) -> None:
    fill_cart(page, "Bites n Bytes", {"Margherita pizza": 1})
    page.locator("input[name=when][value=later]").check()
    later = datetime.now() + timedelta(hours=2)
    page.get_by_label("delivery time").fill(later.strftime("%Y-%m-%dT%H:%M"))
    expect(page.get_by_test_id("total")).to_have_text("$12.50")
    checkout(page)
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "SCHEDULED")

    page.get_by_test_id("cancel").click()

    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "CANCELLED")
    expect(page.get_by_test_id("reason")).to_have_text("Reason: cancelled by the customer")
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    screenshot(page, "order-cancelled")


def test_the_storefront_says_a_store_is_paused_and_an_item_sold_out(page: Page) -> None:
    auth = {"Authorization": f"Bearer {DEV_RESTAURANT_KEY}"}
    store = "/api/v1/restaurants/mcstate"
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    try:
        paused = page.request.put(f"{store}/status", data={"state": "PAUSED", "until": until}, headers=auth)
        assert paused.ok, paused.text()
        snoozed = {"snoozed": [{"productId": "1301", "until": until}]}
        assert page.request.put(f"{store}/availability", data=snoozed, headers=auth).ok

        fill_cart(page, "McState", {"Durable fries": 1})

        expect(page.get_by_test_id("store-state")).to_contain_text("McState takes no orders now, until")
        expect(page.get_by_role("button", name="add Idempotent shake", exact=True)).to_be_disabled()
        expect(page.locator("[data-product='1301']")).to_contain_text("sold out until")
        page.get_by_role("button", name="Check out").click()
        expect(page.get_by_role("alert")).to_contain_text("the restaurant is paused until")
        screenshot(page, "storefront-paused")
    finally:
        page.request.put(f"{store}/status", data={"state": "ONLINE"}, headers=auth)
        page.request.put(f"{store}/availability", data={"snoozed": []}, headers=auth)


def test_the_operations_page_lists_every_driver_and_counts_orders(page: Page) -> None:
    page.goto("/ops")
    cart = {
        "restaurantId": "mcstate",
        "products": [{"productId": "1301", "quantity": 1}],
        "deliveryDelay": 3_600_000,
    }
    assert page.request.post("/store/checkout", data=cart).status == 201  # an order that stays SCHEDULED

    drivers = page.get_by_test_id("drivers").locator("tbody tr")
    expect(drivers.filter(has_text="driver-1")).to_have_count(1)
    expect(drivers.filter(has_text="driver-2")).to_have_count(1)
    expect(page.locator("[data-marker='driver:driver-1']")).to_be_attached()
    expect(page.get_by_test_id("counts")).to_contain_text("SCHEDULED")
    expect(page.get_by_test_id("orders").locator("tbody tr").filter(has_text="SCHEDULED")).not_to_have_count(
        0
    )
    expect(page.get_by_test_id("pager")).to_contain_text("page 1 of 1")
    screenshot(page, "ops")


def test_the_order_page_shows_its_region_and_the_operations_page_filters_by_region(page: Page) -> None:
    fill_cart(page, "Golden Gate Grill", {"Sourdough bowl": 1})
    checkout(page)
    expect(page.get_by_test_id("region")).to_have_text("San Francisco")

    page.goto("/ops?region=san-francisco")

    drivers = page.get_by_test_id("drivers").locator("tbody tr")
    expect(drivers.filter(has_text="driver-2")).to_have_count(1)  # the drivers start in the regions in turn
    expect(drivers).to_have_count(1)
    expect(drivers.first).to_contain_text("San Francisco")
    expect(page.get_by_test_id("region")).to_have_value("san-francisco")
    screenshot(page, "ops-one-region")
