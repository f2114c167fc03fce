"""The shared HTTP client of the services process and how its answers become errors."""

import httpx
from restate.exceptions import TerminalError

_client: httpx.AsyncClient | None = None


def http_client() -> httpx.AsyncClient:
    """One pooled client per process, created on first use (never at import time)."""
    global _client
    if _client is None:
        _client = httpx.AsyncClient()
    return _client


def check_response(response: httpx.Response, what: str) -> None:
    """Return on 2xx; a 4xx is our mistake and retrying cannot fix it (terminal); a 5xx is retried."""
    if response.is_success:
        return
    detail = f"{what} answered {response.status_code}: {response.text[:200]}"
    if response.is_client_error:
        raise TerminalError(detail, status_code=response.status_code)
    raise RuntimeError(detail)
