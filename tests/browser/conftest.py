"""A real stack and Debian's chromium driven by Playwright; screenshots land in test-artifacts/screenshots."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from foodorder.config import OPS_USER
from foodorder.stack import Stack
from tests.integration.conftest import ARTIFACTS, running_stack, stack_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Drivers slow enough that a delivery takes seconds: the page sees the marker move several times
    # (the gateway reads an order's changes at most once a second).
    settings = stack_settings(tmp_path_factory.mktemp("browser")).model_copy(update={"driver_speed_mps": 15})
    with running_stack(settings, "browser") as stack:
        yield stack


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium) when it can")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser: Browser, stack: Stack, width: int = 1280, height: int = 900) -> Page:
    context = browser.new_context(
        base_url=stack.settings.gateway_url,
        viewport={"width": width, "height": height},
        http_credentials={"username": OPS_USER, "password": stack.settings.ops_password},  # for /ops
    )
    context.set_default_timeout(15_000)
    return context.new_page()


@pytest.fixture
def page(browser: Browser, web_stack: Stack) -> Iterator[Page]:
    page = new_page(browser, web_stack)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser: Browser, web_stack: Stack) -> Iterator[Page]:
    """A phone-sized screen."""
    page = new_page(browser, web_stack, width=390, height=844)
    yield page
    page.context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
