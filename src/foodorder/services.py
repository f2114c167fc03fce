"""The one Restate deployment: every service of foodorder, served by hypercorn over HTTP/2."""

import restate

from foodorder.delivery.manager import delivery_manager
from foodorder.delivery.matcher import driver_delivery_matcher
from foodorder.delivery.twin import driver_digital_twin
from foodorder.ordering.status import order_status
from foodorder.ordering.workflow import order_workflow
from foodorder.simulation.driver_app import driver_mobile_app

SERVICES: list[restate.Service | restate.VirtualObject | restate.Workflow] = [
    order_workflow,
    order_status,
    delivery_manager,
    driver_delivery_matcher,
    driver_digital_twin,
    driver_mobile_app,
]

app = restate.app(services=SERVICES)
