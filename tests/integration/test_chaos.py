"""A small `foodorder chaos`: every process (the Kafka broker and the webhook receiver too) killed, 30% of
the stubs' answers disturbed, nothing lost, every status webhook received once and in order."""

import io

from rich.console import Console

from foodorder import chaos


def test_orders_survive_crashes_of_every_process_and_injected_faults() -> None:
    output = io.StringIO()

    report = chaos.run(chaos.Plan(orders=30, fault_rate=0.3, kill_every_s=3), Console(file=output, width=120))

    assert report.ok, output.getvalue()
    assert sum(report.statuses.values()) == 30
    assert set(report.statuses) <= {"DELIVERED", "REJECTED", "CANCELLED"}
    assert {"services", "restate-server", "pos", "payment", "broker", "receiver"} <= set(report.kills)
    assert sum(report.faults.values()) > 0
    assert report.wrong_webhooks == []
