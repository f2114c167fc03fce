"""Settings come from FOODORDER_* variables and scale every simulated duration."""

import pytest

from foodorder.config import Settings
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
