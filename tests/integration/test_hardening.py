"""Only the gateway is a public door: Restate's own ports stay closed to everyone else."""

import httpx
import psutil
import pytest

from foodorder.stack import Stack
from tests.integration.conftest import Client


@pytest.mark.parametrize(
    "target",
    [
        "order-workflow/any-order/selectedDriver",
        "order-workflow/any-order/signalDriverAtRestaurant",
        "order-workflow/any-order/signalDeliveryFinished",
        "order-workflow/any-order/getDispatch",
        "order-workflow/any-order/watched",
        "order-status/any-order/setETA",
        "order-status/any-order/trackDriver",
        "order-status/any-order/recordStatus",
        "order-status/any-order/announce",
        "order-status/any-order/driverAssigned",
        "delivery-manager/any-delivery/notifyDeliveryPickup",
        "driver-delivery-matcher/any-region/setDriverAvailable",
        "driver-delivery-matcher/any-region/expireOffers",
        "driver-digital-twin/any-driver/assignDeliveryJob",
        "driver-mobile-app/any-driver/move",
    ],
)
def test_handlers_only_services_call_are_not_reachable_from_the_ingress(client: Client, target: str) -> None:
    response = client.call(target, 0)

    assert response.status_code == 400
    assert "not public" in response.text


def test_an_unsigned_call_to_the_services_endpoint_is_refused(stack: Stack) -> None:
    # Over HTTP/2 without upgrade, as restate-server calls it (granian serves nothing else).
    with httpx.Client(http1=False, http2=True) as h2c:
        response = h2c.post(
            f"{stack.settings.services_url}/invoke/order-status/any-order/get",
            headers={"content-type": "application/json"},
        )

    assert response.status_code == 401


def test_the_restate_ports_listen_on_loopback_only(stack: Stack) -> None:
    s = stack.settings
    restate_ports = {s.ingress_port, s.admin_port, s.node_port, s.services_port}
    listening = {
        c.laddr.port: c.laddr.ip
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in restate_ports
    }

    assert listening == dict.fromkeys(restate_ports, "127.0.0.1")
