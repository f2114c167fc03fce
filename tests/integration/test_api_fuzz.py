"""Property-based run of the public API's own OpenAPI schema: whatever a client sends, never a 5xx."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from foodorder.config import DEV_DRIVER_KEY, DEV_PROVIDER_KEY, DEV_RESTAURANT_KEY, Settings
from foodorder.gateway.app import create_app
from foodorder.stack import Stack
from tests.integration.conftest import running_stack, stack_settings


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own without drivers, so that fuzzed drivers and orders disturb no other test."""
    settings = stack_settings(Path(tmp_path_factory.mktemp("fuzz"))).model_copy(update={"drivers": 0})
    with running_stack(settings, "fuzz") as stack:
        yield stack


def key_for(path: str) -> str:
    """The dev key of the party an endpoint is for, so that generated cases get past authentication."""
    if path.startswith("/api/v1/drivers"):
        return DEV_DRIVER_KEY
    if path.startswith("/api/v1/restaurants"):
        return DEV_RESTAURANT_KEY
    return DEV_PROVIDER_KEY


# The same document the gateway serves at /openapi.json, built from the same code.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
# The test sends a valid key with every case (`key_for`), so a case whose negative mutation was to
# drop the key would be accepted, and the API ignores query parameters it does not define, as FastAPI
# does: neither is generated, so that an accepted negative case is a real finding.
schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
MIN_CASES = 1000
FRAMING_HEADERS = {"transfer-encoding", "content-length", "connection", "te", "trailer", "upgrade", "host"}
cases: list[str] = []


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_public_api_answers_every_generated_request_without_a_server_error(
    case: schemathesis.Case[Any], fuzz_stack: Stack
) -> None:
    cases.append(case.operation.label)
    # Headers that frame the HTTP message are the HTTP server's to judge, not the API's: hypercorn
    # answers a transfer coding it does not know with 501, as RFC 9112 asks.
    for name in [name for name in case.headers or {} if name.lower() in FRAMING_HEADERS]:
        del case.headers[name]
    case.call_and_validate(
        base_url=fuzz_stack.settings.gateway_url,
        headers={"Authorization": f"Bearer {key_for(case.path)}"},
        timeout=10,
        # A schema-valid order may still name a restaurant or product the catalog lacks: a 422.
        excluded_checks=[checks.positive_data_acceptance],
    )


def test_the_run_above_tried_at_least_a_thousand_requests() -> None:
    """Runs after the property test in this module: it counts what that test sent."""
    assert len(cases) >= MIN_CASES, f"only {len(cases)} generated requests"
