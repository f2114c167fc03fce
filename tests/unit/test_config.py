"""Settings come from FOODORDER_* variables and scale every simulated duration."""

from pathlib import Path

import pytest

from foodorder import identity
from foodorder.config import Settings
from foodorder.services import create_app
from foodorder.stack import settings_env


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
