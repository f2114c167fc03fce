"""The one Restate deployment: every service of foodorder, served over HTTP/2 (hypercorn or granian)."""

import os
import signal
from typing import Any

import restate

from foodorder import telemetry
from foodorder.config import Settings, get_settings
from foodorder.delivery.manager import delivery_manager
from foodorder.delivery.matcher import driver_delivery_matcher
from foodorder.delivery.twin import driver_digital_twin
from foodorder.ordering.board import ops_board
from foodorder.ordering.status import order_status
from foodorder.ordering.store_state import store_state
from foodorder.ordering.workflow import order_workflow
from foodorder.probe import engine_probe
from foodorder.serve import freeze_startup_heap
from foodorder.simulation.driver_app import driver_mobile_app
from foodorder.stack import die_with
from foodorder.webhooks import provider_webhooks, webhook_outbox

SERVICES: list[restate.Service | restate.VirtualObject | restate.Workflow] = [
    order_workflow,
    order_status,
    store_state,
    ops_board,
    delivery_manager,
    driver_delivery_matcher,
    driver_digital_twin,
    driver_mobile_app,
    engine_probe,
    webhook_outbox,
    provider_webhooks,
]


def create_app(settings: Settings) -> Any:
    """The ASGI app of the services endpoint, accepting only requests signed by a configured key."""
    if not settings.request_identity_keys and not settings.dev_mode:
        raise ValueError("FOODORDER_REQUEST_IDENTITY_KEYS is empty: the endpoint would accept unsigned calls")
    telemetry.follow_invocations(SERVICES)
    return restate.app(services=SERVICES, identity_keys=settings.request_identity_keys or None)


def app_from_environment() -> Any:
    """The endpoint's app in a granian worker (environment settings); the worker dies with its server.

    Killed, granian's main process would leave its workers serving, and the port taken.
    """
    die_with(os.getppid(), signal.SIGKILL)
    settings = get_settings()
    telemetry.setup(settings, "services")
    app = create_app(settings)
    freeze_startup_heap()
    return app
