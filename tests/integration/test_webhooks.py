"""Marketplace webhooks on a stack of their own: signed orders in, signed status events out.

Two providers have a webhook (FOODORDER_PROVIDER_WEBHOOKS) pointing at the receiver stub, which
checks every signature and keeps each event once by its event id; the storefront has none. A second
stack, with a retry window of seconds, shows events marked failed, the delivery log and the replay.
"""

import ast
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from foodorder import introspection
from foodorder.clients.webhooks import event_body
from foodorder.config import (
    DEV_PROVIDER_KEY,
    DEV_RESTAURANT_KEY,
    DEV_STOREFRONT_KEY,
    ProviderWebhook,
    Settings,
)
from foodorder.models import Status, WebhookEvent
from foodorder.signing import SIGNATURE, TIMESTAMP, sign, signed_headers
from foodorder.stack import Stack, wait_until
from tests.integration.conftest import (
    OTHER_PROVIDER_KEY,
    Api,
    Client,
    api_order,
    running_stack,
    stack_settings,
)

README = Path(__file__).parents[2] / "README.md"
SECRETS = {"dev-provider": "dev-provider-webhook-secret", "other-provider": "other-provider-webhook-secret"}
PROVIDERS = {DEV_PROVIDER_KEY: "dev-provider", OTHER_PROVIDER_KEY: "other-provider"}


def hooked_settings(tmp: Path, **overrides: Any) -> Settings:
    """A test stack whose two providers' webhooks point at the receiver stub."""
    settings = stack_settings(tmp)
    webhooks = {
        provider: ProviderWebhook(url=settings.receiver_endpoint(provider), secret=secret)
        for provider, secret in SECRETS.items()
    }
    return settings.model_copy(update={"provider_webhooks": webhooks, **overrides})


class Marketplace:
    """The providers' side: signed orders to the gateway, and what their webhook receiver got."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.api = Api(stack.settings)
        self.client = Client(stack.settings)
        self.http = httpx.Client(timeout=30)

    def push(
        self, order: dict[str, Any], provider: str = "dev-provider", secret: str | None = None, age_s: int = 0
    ) -> httpx.Response:
        """POST `order` to the provider's order webhook, signed with `secret` (the provider's by default)."""
        body = json.dumps(order).encode()
        timestamp = int(time.time()) - age_s
        signature = sign(secret or SECRETS[provider], timestamp, body)
        return self.http.post(
            f"{self.settings.gateway_url}/api/v1/providers/{provider}/webhooks/orders",
            content=body,
            headers={"content-type": "application/json", TIMESTAMP: str(timestamp), SIGNATURE: signature},
        )

    def received(self, order_ref: str | None = None, provider: str = "dev-provider") -> list[dict[str, Any]]:
        """The events the receiver kept for the provider (one order's, if given), in the order they came."""
        params = {"provider": provider} | ({"order_id": order_ref} if order_ref else {})
        response = self.http.get(f"{self.settings.receiver_url}/events", params=params)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def wait_received(self, order_ref: str, final: Status, timeout_s: float = 120) -> list[dict[str, Any]]:
        """The order's events once the receiver has its final status."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.received(order_ref)
            if final in [e["status"] for e in events]:
                return events
            assert time.monotonic() < deadline, f"{order_ref}: no {final} event; received {events}"
            time.sleep(0.1)

    def wait_delivered(self, order_ref: str) -> None:
        """Wait until the pushed order is DELIVERED (its webhook answered before the workflow stored it)."""
        wait_until(
            lambda: self.api.request("GET", f"/api/v1/orders/{order_ref}").status_code == 200, order_ref, 30
        )
        self.api.wait_for(order_ref, Status.DELIVERED)

    def statuses(self, order_ref: str, key: str = DEV_PROVIDER_KEY) -> list[str]:
        view = self.api.request("GET", f"/api/v1/orders/{order_ref}", key=key).json()
        return [h["status"] for h in view["history"]]

    def deliveries(self, key: str = DEV_PROVIDER_KEY, state: str | None = None) -> list[dict[str, Any]]:
        params = {"status": state} if state else {}
        response = self.api.request("GET", "/api/v1/webhooks/deliveries", key=key, params=params)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["deliveries"]
        return found

    def outbox_invocations(self, key: str) -> int:
        """How many invocations of webhook-outbox the stream `key` took (done, running or scheduled)."""
        sql = (
            "SELECT count(*) AS n FROM sys_invocation"
            f" WHERE target_service_name = 'webhook-outbox' AND target_service_key = '{key}'"
        )
        return int(introspection.query_blocking(self.settings.admin_url, sql)[0]["n"])

    def control(self, fail_with: int | None = None) -> None:
        """Tell the receiver to fail every event with `fail_with`, or (None) to take them again."""
        response = self.http.post(f"{self.settings.receiver_url}/control", json={"failWith": fail_with})
        assert response.status_code == 200, response.text

    def close(self) -> None:
        self.api.http.close()
        self.client.http.close()
        self.http.close()


def marketplace_on(settings: Settings, name: str) -> Iterator[Marketplace]:
    with running_stack(settings, name) as stack:
        market = Marketplace(stack)
        yield market
        market.close()


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Marketplace]:
    yield from marketplace_on(hooked_settings(tmp_path_factory.mktemp("webhooks")), "webhooks")


def assert_one_event_per_status(events: list[dict[str, Any]], statuses: list[str], order_ref: str) -> None:
    """The order's events are its history, in order, each status once under an event id of its own."""
    assert [e["status"] for e in events] == statuses
    assert all(e["type"] == "order.status" and e["orderId"] == order_ref for e in events)
    assert len({e["eventId"] for e in events}) == len(events)
    assert [e["receipts"] for e in events] == [1] * len(events), "an acknowledged event was sent again"


def test_a_signed_order_runs_and_every_status_reaches_the_providers_webhook(market: Marketplace) -> None:
    order = api_order()
    started = time.monotonic()
    response = market.push(order)
    answered_s = time.monotonic() - started

    assert response.status_code == 200, response.text
    assert response.json()["id"] == order["id"]
    assert answered_s < 5, f"the webhook answered after {answered_s:.1f}s"
    market.wait_delivered(order["id"])
    events = market.wait_received(order["id"], Status.DELIVERED)
    assert_one_event_per_status(events, market.statuses(order["id"]), order["id"])
    assert events[0]["status"] == "CREATED" and events[-1]["status"] == "DELIVERED"
    in_delivery = next(e for e in events if e["status"] == "IN_DELIVERY")
    assert in_delivery["eta"] > in_delivery["at"], "the event on the way carries the ETA"
    assert "eta" not in events[-1]
    assert market.client.payments(f"dev-provider:{order['id']}") == ["authorize", "capture"]
    # What it costs the engine: one invocation per status event, and the log's clearing (scheduled).
    assert market.outbox_invocations(f"dev-provider:{order['id']}") == len(events) + 1


def test_a_resent_order_is_a_no_op_and_a_changed_one_a_conflict(market: Marketplace) -> None:
    order = api_order()
    assert market.push(order).status_code == 200

    again = market.push(order)
    changed = market.push({**order, "products": [{"productId": "1002", "quantity": 1}]})

    assert again.status_code == 200, again.text
    assert changed.status_code == 409, changed.text
    market.wait_delivered(order["id"])
    assert market.client.payments(f"dev-provider:{order['id']}") == ["authorize", "capture"]
    assert len(market.client.preparations(f"dev-provider:{order['id']}")) == 1


@pytest.mark.parametrize(
    "how",
    [
        "wrong secret",
        "stale timestamp",
        "timestamp from the future",
        "no signature",
        "provider without webhook",
    ],
)
def test_an_order_not_signed_right_is_refused_and_nothing_is_stored(market: Marketplace, how: str) -> None:
    order = api_order()
    if how == "wrong secret":
        response = market.push(order, secret="not-the-providers-secret")
    elif how == "stale timestamp":
        response = market.push(order, age_s=301)
    elif how == "timestamp from the future":
        response = market.push(order, age_s=-301)
    elif how == "no signature":
        url = f"{market.settings.gateway_url}/api/v1/providers/dev-provider/webhooks/orders"
        response = market.http.post(url, json=order)
    else:  # the storefront is a provider, but it has no webhook secret
        response = market.push(order, provider="storefront", secret="anything-at-all")

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    for key, provider in ((DEV_PROVIDER_KEY, "dev-provider"), (DEV_STOREFRONT_KEY, "storefront")):
        assert market.api.request("GET", f"/api/v1/orders/{order['id']}", key=key).status_code == 404
        assert market.client.state("order-workflow", f"{provider}:{order['id']}", "order") is None


def test_a_signed_order_that_does_not_fit_is_refused_naming_the_field(market: Marketplace) -> None:
    response = market.push(api_order(products=[{"productId": "1000", "quantity": 0}]))

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "products", 0, "quantity"]


def test_every_event_is_delivered_once_and_in_order_after_the_receiver_was_down(market: Marketplace) -> None:
    receiver = market.stack.processes["receiver"]
    receiver.stop(signal.SIGKILL)
    refs = [api_order()["id"] for _ in range(3)]
    for ref in refs:
        response = market.api.request("POST", "/api/v1/orders", json=api_order(id=ref))
        assert response.status_code == 202, response.text
    for ref in refs:
        market.api.wait_for(ref, Status.DELIVERED)
    pending = {d["event"]["orderId"] for d in market.deliveries(state="pending")}
    assert set(refs) <= pending, "the events wait for the receiver"

    receiver.start()
    wait_until(lambda: httpx.get(f"{market.settings.receiver_url}/healthz").is_success, "receiver")
    for ref in refs:
        events = market.wait_received(ref, Status.DELIVERED)
        assert_one_event_per_status(events, market.statuses(ref), ref)
    logged = [d for d in market.deliveries() if d["event"].get("orderId") in refs]
    assert {d["state"] for d in logged} == {"delivered"}
    assert any(d["attempts"] > 1 for d in logged), "the first events were retried"


def test_orders_of_a_provider_without_a_webhook_cost_no_webhook(market: Marketplace) -> None:
    order = api_order()
    response = market.api.request("POST", "/api/v1/orders", key=DEV_STOREFRONT_KEY, json=order)
    assert response.status_code == 202, response.text
    market.api.request("GET", f"/api/v1/orders/{order['id']}", key=DEV_STOREFRONT_KEY)
    key = f"storefront:{order['id']}"
    wait_until(lambda: market.client.status(key)["status"] == Status.DELIVERED, "delivery", 90)

    assert market.client.state("order-workflow", key, "terms")["webhook"] is None
    assert market.client.state("webhook-outbox", key, "deliveries") is None
    assert market.outbox_invocations(key) == 0
    assert market.deliveries(key=DEV_STOREFRONT_KEY) == []


def test_store_changes_reach_every_provider_with_a_webhook(market: Marketplace) -> None:
    def store(path: str, body: dict[str, Any]) -> None:
        response = market.api.request(
            "PUT", f"/api/v1/restaurants/mcstate{path}", key=DEV_RESTAURANT_KEY, json=body
        )
        assert response.status_code == 200, response.text

    until = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)
    store("/status", {"state": "PAUSED", "until": until.isoformat()})
    store("/availability", {"snoozed": [{"productId": "1003", "until": until.isoformat()}]})
    store("/status", {"state": "ONLINE"})
    store("/availability", {"snoozed": []})

    expected = [
        ("store.status", "PAUSED", "paused until 2099-01-01 12:00 UTC"),
        ("menu.updated", "UPDATED", "snoozed items: 1003"),
        ("store.status", "ONLINE", None),
        ("menu.updated", "UPDATED", "snoozed items: none"),
    ]
    for provider in SECRETS:
        deadline = time.monotonic() + 60
        while len(events := [e for e in market.received(provider=provider) if "restaurantId" in e]) < 4:
            assert time.monotonic() < deadline, f"{provider} heard of {len(events)} of 4 store changes"
            time.sleep(0.1)
        assert [(e["type"], e["status"], e.get("reason")) for e in events] == expected
        assert {e["restaurantId"] for e in events} == {"mcstate"}
        assert all("orderId" not in e for e in events)

    def store_deliveries() -> list[tuple[str, str]]:
        logged = market.deliveries(key=OTHER_PROVIDER_KEY)
        return [(d["event"]["type"], d["state"]) for d in logged if "restaurantId" in d["event"]]

    # The log is newest first; an event is marked delivered once the receiver's answer came back.
    delivered = [(kind, "delivered") for kind, _, _ in reversed(expected)]
    wait_until(lambda: store_deliveries() == delivered, "the store events logged as delivered", 30)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Marketplace]:
    # 0.003 hours: an event not acknowledged within about 11 s is marked failed.
    settings = hooked_settings(tmp_path_factory.mktemp("impatient"), webhook_retry_hours=0.003)
    yield from marketplace_on(settings, "webhooks-impatient")


def test_events_the_provider_refuses_are_marked_failed_listed_and_can_be_replayed(
    impatient: Marketplace,
) -> None:
    impatient.control(fail_with=503)
    order = api_order()
    assert impatient.push(order).status_code == 200
    impatient.wait_delivered(order["id"])
    statuses = impatient.statuses(order["id"])
    deadline = time.monotonic() + 90
    while len(failed := [d for d in impatient.deliveries(state="failed")]) < len(statuses):
        assert time.monotonic() < deadline, f"not all {statuses} failed: {impatient.deliveries()}"
        time.sleep(0.2)
    assert [d["event"]["status"] for d in reversed(failed)] == statuses
    assert all(d["lastError"].endswith('answered 503: {"detail":"told to fail"}') for d in failed)
    assert impatient.received(order["id"]) == []
    ops = impatient.api.http.get("/ops/webhooks", auth=("ops", impatient.settings.ops_password))
    assert ops.status_code == 200, ops.text
    assert {d["event"]["eventId"] for d in ops.json()["failed"]} >= {d["event"]["eventId"] for d in failed}

    impatient.control(fail_with=None)
    final = failed[0]["event"]
    replay = impatient.api.request("POST", f"/api/v1/webhooks/deliveries/{final['eventId']}/replay")
    assert replay.status_code == 202, replay.text
    events = impatient.wait_received(order["id"], Status.DELIVERED)
    assert [(e["eventId"], e["status"]) for e in events] == [(final["eventId"], "DELIVERED")]
    impatient.client.eventually(
        lambda: next(d["state"] for d in impatient.deliveries() if d["event"]["eventId"] == final["eventId"]),
        "delivered",
    )
    others = impatient.api.request(
        "POST", f"/api/v1/webhooks/deliveries/{final['eventId']}/replay", key=OTHER_PROVIDER_KEY
    )
    assert others.status_code == 404, others.text


def readme_example(language: str, containing: str, market: Marketplace, order_ref: str) -> str:
    """A code block of the README's "Integrating a marketplace", pointed at the test stack."""
    section = README.read_text().split("### Integrating a marketplace")[1].split("\n### ")[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    code: str = next(block for block in blocks if containing in block)
    for written, actual in (
        ("http://localhost:3000", market.settings.gateway_url),
        ("dev-webhook-secret", SECRETS["dev-provider"]),
        ("order-7", order_ref),
        ("order-8", order_ref),
    ):
        code = code.replace(written, actual)
    return code


def test_the_readmes_python_example_sends_an_order_and_checks_a_status_event(
    market: Marketplace, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = api_order()["id"]
    example: dict[str, Any] = {}
    exec(readme_example("python", "def send_order", market, ref), example)

    assert ast.literal_eval(capsys.readouterr().out)["id"] == ref
    market.wait_delivered(ref)
    sent = WebhookEvent(
        event_id="e-1", type="order.status", order_id=ref, status="DELIVERED", at=datetime.now(UTC)
    )
    body = event_body(sent)
    headers = signed_headers(SECRETS["dev-provider"], int(time.time()), body)
    assert example["status_event"](headers, body)["eventId"] == "e-1"
    with pytest.raises(ValueError, match="bad signature"):
        example["status_event"](headers, body.replace(b"DELIVERED", b"CANCELLED"))


def test_the_readmes_curl_example_sends_an_order(market: Marketplace) -> None:
    ref = api_order()["id"]
    script = readme_example("sh", "openssl", market, ref)
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["id"] == ref
    market.wait_delivered(ref)
