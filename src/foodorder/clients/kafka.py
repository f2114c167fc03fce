"""The Kafka topic of drivers' locations (the seed's `driver-updates`): creating it and publishing to it."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from foodorder.clients.http import Transient

TOPIC = "driver-updates"
# Records of one driver share a partition (key = driver id), so they reach the twin in order; four
# partitions match restate-server's four, so the consumer spreads the drivers over them.
PARTITIONS = 4


class Producer:
    """Appends records to driver-updates; connects on first use and again after a broker restart."""

    def __init__(self, servers: str, timeout_s: float) -> None:
        self.servers, self.timeout_s = servers, timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock: asyncio.Lock | None = None  # made in the event loop that uses it

    async def _started(self) -> AIOKafkaProducer:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.servers, acks="all", request_timeout_ms=int(self.timeout_s * 1000)
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, key: str, value: bytes) -> None:
        """Append one record and return once the broker acknowledged it.

        A broker that cannot be reached or does not acknowledge in time is Transient: the same publish
        may work later (and may then be a duplicate, which the consumer has to tolerate).
        """
        try:
            producer = await self._started()
            await producer.send_and_wait(TOPIC, value, key=key.encode())
        except KafkaError as error:
            raise Transient(f"kafka ({self.servers}): {type(error).__name__} {error}".strip()) from error

    async def close(self) -> None:
        """Send what is buffered and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def create_topic(servers: str) -> None:
    """Create driver-updates unless it exists (Restate's consumer does not create topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        answer = await admin.create_topics([NewTopic(TOPIC, PARTITIONS, replication_factor=1)])
        for topic, code, message in answer.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"kafka ({servers}) refused to create {topic}: {message} (error {code})")
    finally:
        await admin.close()


def create_topic_blocking(servers: str) -> None:
    """create_topic for synchronous code, in a thread of its own (the caller's may run an event loop)."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(lambda: asyncio.run(create_topic(servers))).result()
