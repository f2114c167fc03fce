"""Calls to an API that every Restate node serves alike (the ingress, the admin API)."""

from typing import Any, Self

import httpx

from foodorder.clients.http import Client

CONNECTIONS = 16


class RestateApi:
    """Requests to one Restate API, given the base URL of each node (or of each balancer in front).

    It uses one node until that node refuses a connection (or accepts none in time), then the next
    one's: any node's ingress takes any invocation (it forwards it to the partition's leader) and
    any node's admin API answers for the whole cluster, so spreading the calls would buy nothing on
    one machine, while staying on one node keeps the pooled connections warm. A request without a
    connection reached no node, so it may be sent to the next; a request cut off mid-way fails, and
    its caller decides.
    """

    def __init__(self, urls: list[str], timeout_s: float, connections: int = CONNECTIONS) -> None:
        # Few connections, many requests each: each connection held costs the pool some CPU
        # (`foodorder bench` showed throughput halving from 16 to 64 connections with httpx's own pool).
        self.http = Client(connections, timeout_s)
        self.urls = urls
        self.current = 0  # the index in `urls` of the node in use

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`method` `path` on the node in use; without a connection to it, on the next node."""
        refused = 0
        while True:
            node = self.current
            try:
                return await self.http.request(method, self.urls[node] + path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                refused += 1
                if refused == len(self.urls):
                    raise
                self.move_on(node)

    def move_on(self, node: int) -> None:
        """Use the node after `node` from now on (unless a concurrent call moved on already)."""
        if self.current == node:
            self.current = (node + 1) % len(self.urls)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
