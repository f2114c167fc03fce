"""The one Restate deployment: every service of foodorder, served by hypercorn over HTTP/2."""

from typing import Any

import restate

from foodorder import telemetry
from foodorder.config import Settings
from foodorder.delivery.manager import delivery_manager
from foodorder.delivery.matcher import driver_delivery_matcher
from foodorder.delivery.twin import driver_digital_twin
from foodorder.ordering.board import ops_board
from foodorder.ordering.status import order_status
from foodorder.ordering.workflow import order_workflow
from foodorder.probe import engine_probe
from foodorder.simulation.driver_app import driver_mobile_app

SERVICES: list[restate.Service | restate.VirtualObject | restate.Workflow] = [
    order_workflow,
    order_status,
    ops_board,
    delivery_manager,
    driver_delivery_matcher,
    driver_digital_twin,
    driver_mobile_app,
    engine_probe,
]


def create_app(settings: Settings) -> Any:
    """The ASGI app of the services endpoint, accepting only requests signed by a configured key."""
    if not settings.request_identity_keys and not settings.dev_mode:
        raise ValueError("FOODORDER_REQUEST_IDENTITY_KEYS is empty: the endpoint would accept unsigned calls")
    telemetry.follow_invocations(SERVICES)
    return restate.app(services=SERVICES, identity_keys=settings.request_identity_keys or None)
