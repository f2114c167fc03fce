"""Stopping every process and starting again resumes the orders in flight, without charging twice."""

from pathlib import Path

from foodorder.models import Status
from tests.integration.conftest import Client, new_order, running_stack, stack_settings


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
