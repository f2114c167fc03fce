"""A replicated Restate cluster's node configuration, ports and health, as pure logic."""

import json
from pathlib import Path
from typing import Any

from foodorder import cluster
from foodorder.config import Settings
from foodorder.stack import on_free_ports


def test_one_node_keeps_the_embedded_default() -> None:
    settings = Settings(data_dir=Path("/data"))

    env = cluster.node_env(settings, 0)

    assert cluster.node_names(settings) == ["restate-server"]
    assert env == {
        "RESTATE_BASE_DIR": "/data/restate",
        "RESTATE_INGRESS__BIND_ADDRESS": "127.0.0.1:8080",
        "RESTATE_ADMIN__BIND_ADDRESS": "127.0.0.1:9070",
        "RESTATE_BIND_ADDRESS": "127.0.0.1:5122",
        "RESTATE_ADVERTISED_ADDRESS": "http://127.0.0.1:5122",
    }
    assert settings.restate_ports == [8080, 9070, 5122]


def test_each_node_of_a_cluster_has_its_name_ports_and_data_and_one_provisions() -> None:
    settings = Settings(data_dir=Path("/data"), restate_nodes=3)

    envs = [cluster.node_env(settings, index) for index in range(3)]

    assert cluster.node_names(settings) == ["restate-1", "restate-2", "restate-3"]
    assert [env["RESTATE_NODE_NAME"] for env in envs] == ["foodorder-1", "foodorder-2", "foodorder-3"]
    assert [env["RESTATE_INGRESS__BIND_ADDRESS"] for env in envs] == [
        f"127.0.0.1:{p}" for p in (8080, 8081, 8082)
    ]
    assert [env["RESTATE_ADMIN__BIND_ADDRESS"] for env in envs] == [
        f"127.0.0.1:{p}" for p in (9070, 9071, 9072)
    ]
    assert [env["RESTATE_ADVERTISED_ADDRESS"] for env in envs] == settings.node_urls
    assert len({env["RESTATE_BASE_DIR"] for env in envs}) == 3
    assert [env["RESTATE_AUTO_PROVISION"] for env in envs] == ["true", "false", "false"]
    assert {env["RESTATE_DEFAULT_REPLICATION"] for env in envs} == {"2"}
    for env in envs:
        assert json.loads(env["RESTATE_METADATA_CLIENT__ADDRESSES"]) == [
            "http://127.0.0.1:5122",
            "http://127.0.0.1:5123",
            "http://127.0.0.1:5124",
        ]
    assert settings.ingress_urls[2] == "http://127.0.0.1:8082"
    assert settings.admin_url == "http://127.0.0.1:9070"


def test_free_ports_leave_room_for_every_node() -> None:
    settings = on_free_ports(Settings(restate_nodes=3))

    ports = [*settings.restate_ports, settings.services_port, settings.gateway_port, settings.kafka_port]

    assert len(set(ports)) == len(ports) == 12
    # Below the kernel's ephemeral range: no client connection takes them before the nodes bind them.
    assert max(settings.restate_ports) < 32768


def node(name: str, state: str = "alive", metadata: str = "member") -> dict[str, Any]:
    return {
        "name": name,
        "plain_node_id": name,
        "address": f"http://{name}",
        "state": state,
        "metadata_server_state": metadata,
    }


def replica(partition: int, node_id: str, mode: str = "Follower", replay: str = "active") -> dict[str, Any]:
    return {
        "partition_id": partition,
        "plain_node_id": node_id,
        "effective_mode": mode,
        "replay_status": replay,
    }


NODES = [node("N1"), node("N2"), node("N3")]
REPLICATED = [replica(0, "N1", "Leader"), replica(0, "N2"), replica(1, "N3", "Leader"), replica(1, "N1")]


def test_a_cluster_is_whole_when_every_node_is_a_member_and_every_partition_led_and_replicated() -> None:
    assert cluster.healthy(NODES, REPLICATED, 3)
    assert not cluster.healthy([*NODES[:2], node("N3", state="dead")], REPLICATED, 3)
    assert not cluster.healthy([*NODES[:2], node("N3", metadata="standby")], REPLICATED, 3)
    assert not cluster.healthy(NODES, [replica(0, "N1"), replica(0, "N2")], 3)  # no leader
    assert not cluster.healthy(NODES, [replica(0, "N1", "Leader"), replica(0, "N2", replay="catching-up")], 3)
    assert not cluster.healthy(NODES, [], 3)


def test_each_node_is_described_with_the_partitions_it_leads_and_follows() -> None:
    lines = cluster.describe(NODES, REPLICATED)

    assert lines[0] == "N1 (N1) http://N1 alive, metadata member; partitions led [0], followed [1]"
    assert lines[2].endswith("partitions led [1], followed -")
