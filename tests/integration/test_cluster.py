"""A replicated Restate cluster of three nodes: any node's ingress takes orders, and a small
`foodorder chaos` kills one node at a time under load without losing or duplicating anything."""

import io
import signal

import httpx
import pytest
from rich.console import Console

from foodorder import chaos
from foodorder.config import DEV_OPS_PASSWORD, OPS_USER
from foodorder.models import Status
from foodorder.stack import wait_until
from tests.integration.conftest import Api, Client, api_order, new_order, running_stack, stack_settings


def test_every_nodes_ingress_takes_orders_and_reads_them_from_any_node(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = stack_settings(tmp_path_factory.mktemp("cluster"), restate_nodes=3)
    with running_stack(settings, "cluster") as stack, Client(settings) as client:
        nodes = stack.describe_cluster()
        assert len(nodes) == 3 and all("alive, metadata member" in line for line in nodes), nodes
        orders = []
        for ingress in settings.ingress_urls:
            order = new_order()
            response = httpx.post(f"{ingress}/order-workflow/{order['id']}/run/send", json=order, timeout=30)
            assert response.status_code == 202, response.text
            orders.append(order["id"])
        for order_id in orders:
            client.wait_for(order_id, Status.DELIVERED, timeout_s=180)
            # Read back through each node: every ingress serves every partition.
            for ingress in settings.ingress_urls:
                answer = httpx.post(f"{ingress}/order-status/{order_id}/get", timeout=30)
                assert answer.json()["status"] == "DELIVERED"
            assert client.payments(order_id) == ["authorize", "capture"]
        # Each node keeps a replica of some partition: the partitions are spread over the cluster.
        partitions = stack.restatectl().partitions()
        assert {p["plain_node_id"] for p in partitions} == {"N1", "N2", "N3"}, partitions

        # With the first node gone, the gateway goes on through another node's ingress.
        stack.processes["restate-1"].stop(signal.SIGKILL)
        api = Api(settings)
        try:
            assert api.request("GET", "/readyz", key=None).status_code == 200
            order = api_order()
            response = api.request("POST", "/api/v1/orders", json=order)
            assert response.status_code == 202, response.text
            assert api.wait_for(order["id"], Status.DELIVERED, timeout_s=180)["status"] == "DELIVERED"

            # ... and reads the engine's tables (/ops, /metrics) through another node's admin API.
            def delivered_on_ops() -> int | None:
                response = api.http.get("/ops/snapshot", auth=(OPS_USER, DEV_OPS_PASSWORD))
                if response.status_code == 503:  # every node's query engine failed it, for now
                    return None
                assert response.status_code == 200, response.text
                delivered: int = response.json()["counts"].get("DELIVERED", 0)
                return delivered

            wait_until(lambda: delivered_on_ops() == len(orders) + 1, "the delivered orders counted on /ops")
            assert api.http.get("/metrics", auth=(OPS_USER, DEV_OPS_PASSWORD)).status_code == 200
        finally:
            api.http.close()


def test_orders_survive_each_node_of_a_cluster_killed_in_turn() -> None:
    output = io.StringIO()
    # Orders keep coming for a minute, longer than the three outages take on a quiet machine (on a
    # loaded one the orders take longer too), so that every outage meets orders in flight.
    plan = chaos.Plan(
        orders=30, fault_rate=0.1, kill_every_s=2, restate_nodes=3, node_down_s=5, orders_per_s=0.5
    )

    report = chaos.run(plan, Console(file=output, width=140))

    assert report.ok, output.getvalue()
    assert sum(report.statuses.values()) == 30
    assert set(report.statuses) <= {"DELIVERED", "REJECTED", "CANCELLED"}, output.getvalue()
    assert set(report.kills) == {"restate-1", "restate-2", "restate-3"}
    # Orders kept moving while each node was down.
    assert all(moves > 0 for moves in report.moves_during_outages), output.getvalue()
