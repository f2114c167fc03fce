"""What `foodorder chaos` reads from the orders' histories after killing Restate nodes."""

import json
from typing import Any

from foodorder import chaos


def row(key: str, *changes: tuple[str, int, str | None]) -> dict[str, Any]:
    history = [{"status": status, "at": at, "reason": reason} for status, at, reason in changes]
    return {"service_key": key, "value_utf8": json.dumps(history)}


def test_status_changes_during_each_outage_the_longest_pause_and_why_orders_were_not_delivered() -> None:
    rows = [
        row("a", ("CREATED", 1_000, None), ("IN_PREPARATION", 4_000, None), ("DELIVERED", 9_000, None)),
        row("b", ("CREATED", 2_000, None), ("CANCELLED", 5_500, "no driver was found in time")),
        row("other", ("CREATED", 3_000, None)),  # not one of the run's orders
    ]
    report = chaos.Report(orders=2, outages=[("restate-1", 1_500, 4_500), ("restate-2", 6_000, 8_000)])

    chaos.read_histories(rows, ["a", "b"], report)

    assert report.moves_during_outages == [2, 0]  # 2 000 and 4 000 in the first; none in the second
    assert report.longest_pause_ms == 8_000 - 5_500
    assert report.endings == {"CANCELLED, no driver was found in time": 1}
