"""Settings come from FOODORDER_* variables and scale every simulated duration."""

import contextlib
import io
from pathlib import Path

import pytest

from foodorder import cli, identity
from foodorder.config import Settings, get_settings
from foodorder.services import create_app
from foodorder.stack import Stack, settings_env


def test_ports_and_time_scale_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOODORDER_INGRESS_PORT", "18080")
    monkeypatch.setenv("FOODORDER_TIME_SCALE", "20")
    settings = Settings()
    assert settings.ingress_url == "http://127.0.0.1:18080"
    assert settings.scaled(10) == 0.5


def test_a_zero_time_scale_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOODORDER_TIME_SCALE", "0")
    with pytest.raises(ValueError, match="time_scale"):
        Settings()


def test_child_processes_get_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(pos_port=15050, time_scale=3)
    for name, value in settings_env(original).items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_dev_keys_are_refused_outside_development_mode() -> None:
    with pytest.raises(ValueError, match="dev API keys"):
        Settings(dev_mode=False)


def test_production_services_refuse_to_accept_unsigned_calls() -> None:
    settings = Settings(
        dev_mode=False,
        provider_keys={"p-key": "p"},
        restaurant_keys={"r-key": ["*"]},
        driver_keys={"d-key": ["*"]},
        pos_restaurant_key="r-key",
        storefront_key="p-key",
        ops_password="a real password",
    )
    with pytest.raises(ValueError, match="FOODORDER_REQUEST_IDENTITY_KEYS"):
        create_app(settings)


def test_the_request_identity_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    key_file = tmp_path / "identity" / "key.pem"
    identity.ensure_private_key(key_file)
    first = identity.public_key(key_file)
    identity.ensure_private_key(key_file)

    assert identity.public_key(key_file) == first
    assert first.startswith("publickeyv1_")
    assert key_file.stat().st_mode & 0o077 == 0


def test_a_rate_limit_that_cannot_be_read_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a rate like"):
        Settings(api_rate_limit="lots")


def test_a_process_gets_only_the_secrets_it_uses() -> None:
    settings = Settings()
    pos, services = settings.without_secrets("pos"), settings.without_secrets("services")

    assert pos.pos_restaurant_key == settings.pos_restaurant_key
    assert (pos.provider_keys, pos.ops_password, pos.storefront_key) == ({}, "", "")
    assert (services.pos_restaurant_key, services.driver_keys) == ("", {})
    assert settings.without_secrets("gateway").provider_keys == settings.provider_keys


def test_provider_webhooks_are_a_secret_of_the_processes_that_sign_or_check() -> None:
    settings = Settings(provider_webhooks={"p": {"url": "https://example.com/hooks", "secret": "s" * 16}})
    for process in ("gateway", "services", "receiver"):
        assert settings.without_secrets(process).provider_webhooks == settings.provider_webhooks
    for process in ("pos", "payment"):
        assert settings.without_secrets(process).provider_webhooks == {}


def test_a_short_webhook_secret_or_the_dev_one_outside_development_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        Settings(provider_webhooks={"p": {"url": "https://example.com/hooks", "secret": "short"}})
    with pytest.raises(ValueError, match="dev API keys"):
        Settings(
            dev_mode=False,
            provider_keys={"a-real-key": "p"},
            restaurant_keys={},
            driver_keys={},
            storefront_key="a-real-key",
            pos_restaurant_key="x",
            ops_password="y",
            provider_webhooks={"p": {"url": "https://example.com/hooks", "secret": "dev-webhook-secret"}},
        )


def test_every_address_is_derived_from_host_and_ports_until_a_url_is_set() -> None:
    derived = Settings(restate_nodes=2).model_copy(update={"pos_port": 15050, "admin_port": 19070})
    assert derived.pos_url == "http://127.0.0.1:15050"
    assert derived.admin_urls == ["http://127.0.0.1:19070", "http://127.0.0.1:19071"]
    assert derived.stubs == ["payment", "pos"]

    given = Settings(
        restate_nodes=2,
        restate_ingress_urls=["http://restate-0.restate:8080", "http://restate-1.restate:8080/"],
        restate_admin_urls=["https://restate.internal:9070/cluster-a"],
        payment_url_setting="https://payments.example/v2/",
        pos_url_setting="http://pos.example:5050",
        gateway_url_setting="http://gateway.foodorder.svc:3000",
    ).model_copy(update={"pos_port": 15050, "gateway_port": 13000})  # as the tests and the bench do
    assert given.ingress_urls == ["http://restate-0.restate:8080", "http://restate-1.restate:8080"]
    assert given.ingress_url == "http://restate-0.restate:8080"
    assert given.admin_urls == ["https://restate.internal:9070/cluster-a"]
    assert given.payment_url == "https://payments.example/v2"
    assert given.pos_url == "http://pos.example:5050"
    assert given.gateway_url == "http://gateway.foodorder.svc:3000"
    assert given.stubs == []
    # `foodorder up` still runs its own nodes there, whatever the other processes are told.
    assert given.local_admin_urls == ["http://127.0.0.1:9070", "http://127.0.0.1:9071"]


def test_the_urls_come_from_their_variables_and_reach_child_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FOODORDER_RESTATE_ADMIN_URLS", '["http://r0:9070", "http://r1:9070"]')
    monkeypatch.setenv("FOODORDER_PAYMENT_URL", "http://payments.example")
    monkeypatch.setenv("FOODORDER_GATEWAY_URL", "http://gateway:3000")
    original = Settings()
    assert original.admin_urls == ["http://r0:9070", "http://r1:9070"]
    assert (original.payment_url, original.gateway_url) == ("http://payments.example", "http://gateway:3000")
    assert original.stubs == ["pos"]

    child = settings_env(original)
    assert child["FOODORDER_PAYMENT_URL"] == "http://payments.example/"
    for name in ("FOODORDER_RESTATE_ADMIN_URLS", "FOODORDER_PAYMENT_URL", "FOODORDER_GATEWAY_URL"):
        monkeypatch.delenv(name)
    for name, value in child.items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FOODORDER_PAYMENT_URL", "payments.example:5060"),
        ("FOODORDER_POS_URL", "ftp://pos.example"),
        ("FOODORDER_GATEWAY_URL", "http://"),
        ("FOODORDER_RESTATE_INGRESS_URLS", '["http://restate-0:8080", "restate-1:8080"]'),
        ("FOODORDER_RESTATE_ADMIN_URLS", "[]"),
    ],
)
def test_a_process_refuses_to_start_on_a_bad_url_and_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as refused:
            cli.main(["gateway"])
    finally:
        get_settings.cache_clear()
    assert str(refused.value.code).startswith(f"foodorder gateway: refusing to start: {variable}: ")


def test_foodorder_up_runs_no_stub_for_a_system_with_a_url_of_its_own(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, payment_url_setting="http://payments.example")
    assert set(Stack(settings).python_ports()) == {"services", "pos", "gateway"}
    banner = io.StringIO()
    with contextlib.redirect_stdout(banner):
        cli.print_banner(settings, [], [])
    assert "payment provider     http://payments.example   (FOODORDER_PAYMENT_URL)" in banner.getvalue()
    assert "/ledger" not in banner.getvalue()
