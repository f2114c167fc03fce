"""A replicated Restate cluster on loopback: each node's configuration, and restatectl to look inside.

With `FOODORDER_RESTATE_NODES=n` (n > 1) `foodorder up` runs n restate-server nodes as one cluster,
as Restate's cluster deployment guide describes: every node runs every role (metadata server, admin,
worker, log server, ingress), the metadata is a Raft group of all of them, and the log and each
partition are kept on REPLICATION nodes, so that the cluster goes on while one node is down. Node n
(from 1) listens on each Restate port + n - 1 and keeps its data in `<data dir>/restate-cluster/node-n`.
"""

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foodorder.config import Settings

# Two copies of the log and of each partition: any one node may fail (with three or more nodes).
REPLICATION = 2
SINGLE_NODE = "restate-server"


def node_names(settings: Settings) -> list[str]:
    """The process name of each node: `restate-server` alone, or `restate-1` … in a cluster."""
    if settings.restate_nodes == 1:
        return [SINGLE_NODE]
    return [f"restate-{n}" for n in range(1, settings.restate_nodes + 1)]


def node_env(settings: Settings, index: int) -> dict[str, str]:
    """restate-server's RESTATE_* variables for node `index` (from 0), beside data/restate.toml."""
    s = settings
    ports = {"ingress": s.ingress_port + index, "admin": s.admin_port + index, "node": s.node_port + index}
    env = {
        "RESTATE_BASE_DIR": str((s.data_dir / "restate").resolve()),
        "RESTATE_INGRESS__BIND_ADDRESS": f"{s.host}:{ports['ingress']}",
        "RESTATE_ADMIN__BIND_ADDRESS": f"{s.host}:{ports['admin']}",
        "RESTATE_BIND_ADDRESS": f"{s.host}:{ports['node']}",
        "RESTATE_ADVERTISED_ADDRESS": s.node_urls[index],
    }
    if s.restate_nodes == 1:  # the embedded default: one node, everything local to it
        return env
    return env | {
        "RESTATE_BASE_DIR": str((s.data_dir / "restate-cluster" / f"node-{index + 1}").resolve()),
        "RESTATE_NODE_NAME": f"foodorder-{index + 1}",
        # One node provisions the cluster (once: later starts find it provisioned); the others join it.
        "RESTATE_AUTO_PROVISION": "true" if index == 0 else "false",
        "RESTATE_DEFAULT_REPLICATION": str(REPLICATION),
        "RESTATE_METADATA_CLIENT__ADDRESSES": json.dumps(s.node_urls),
    }


@dataclass
class Restatectl:
    """Restate's cluster administration tool, pointed at every node (it finds a live one)."""

    binary: Path
    node_urls: list[str]

    def sql(self, query: str) -> list[dict[str, Any]]:
        """Rows of one of the cluster's own tables (nodes, partition_state, logs …)."""
        try:
            done = subprocess.run(
                [str(self.binary), "--address", ",".join(self.node_urls), "sql", "--jsonl", query],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError("restatectl sql: no answer in 30 s") from None
        if done.returncode != 0:
            raise RuntimeError(f"restatectl sql: {done.stderr.strip()[:300]}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    def nodes(self) -> list[dict[str, Any]]:
        """Each node: name, address, `state` (alive, dead…) and `metadata_server_state` (member…)."""
        return self.sql("SELECT name, plain_node_id, address, state, metadata_server_state FROM nodes")

    def whole(self, expected: int) -> bool:
        """Whether the cluster of `expected` nodes is `healthy`; False while it cannot tell yet."""
        try:
            return healthy(self.nodes(), self.partitions(), expected)
        except RuntimeError:  # no node answers yet, or the cluster is not provisioned yet
            return False

    def partitions(self) -> list[dict[str, Any]]:
        """Each partition's processors: partition_id, plain_node_id, effective_mode, replay_status."""
        return self.sql(
            "SELECT partition_id, plain_node_id, effective_mode, replay_status FROM partition_state"
        )


def healthy(nodes: list[dict[str, Any]], partitions: list[dict[str, Any]], expected: int) -> bool:
    """Every expected node alive in the metadata group, and every partition led and replicated.

    Before a node may fail, the last one to fail must be back in the metadata group (a Raft group that
    needs a majority) and each partition must have REPLICATION active processors again.
    """
    members = [n for n in nodes if n["state"] == "alive" and n["metadata_server_state"] == "member"]
    active = [p for p in partitions if p["replay_status"] == "active"]
    leaders = {p["partition_id"] for p in active if p["effective_mode"] == "Leader"}
    replicas = Counter(p["partition_id"] for p in active)
    every_partition = {p["partition_id"] for p in partitions}
    return (
        len(members) == expected
        and bool(every_partition)
        and leaders == every_partition
        and all(replicas[p] >= REPLICATION for p in every_partition)
    )


def describe(nodes: list[dict[str, Any]], partitions: list[dict[str, Any]]) -> list[str]:
    """One line per node: its name, address, state, and the partitions it leads and follows."""
    lines = []
    for node in sorted(nodes, key=lambda n: str(n["name"])):
        mine = [p for p in partitions if p["plain_node_id"] == node["plain_node_id"]]
        led = sorted(p["partition_id"] for p in mine if p["effective_mode"] == "Leader")
        followed = sorted(p["partition_id"] for p in mine if p["effective_mode"] != "Leader")
        lines.append(
            f"{node['name']} ({node['plain_node_id']}) {node['address']} {node['state']}, metadata"
            f" {node['metadata_server_state']}; partitions led {led or '-'}, followed {followed or '-'}"
        )
    return lines
