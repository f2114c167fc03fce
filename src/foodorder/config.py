"""One Settings object for every foodorder process, read from FOODORDER_* environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Ports, timings and limits; every field is FOODORDER_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="FOODORDER_", extra="ignore")

    host: str = "127.0.0.1"
    ingress_port: int = 8080
    admin_port: int = 9070
    node_port: int = 5122
    services_port: int = 9080
    pos_port: int = 5050
    payment_port: int = 5060

    data_dir: Path = Path(".foodorder")
    time_scale: float = Field(1.0, gt=0, description="every simulated duration is divided by this")
    drivers: int = Field(2, ge=0, description="simulated drivers started by `foodorder up`")

    driver_speed_mps: float = Field(12.0, gt=0, description="driver speed used for moves and ETAs")
    preparation_s: float = Field(5.0, ge=0, description="how long the POS stub takes to prepare an order")
    poll_interval_s: float = Field(1.0, gt=0, description="how often a driver phone polls for work")
    move_interval_s: float = Field(1.0, gt=0, description="how often a driver phone moves and reports")
    pause_between_deliveries_s: float = Field(2.0, ge=0)
    payment_decline_above: float = Field(
        100_000, ge=0, description="the payment stub declines charges above this amount (cents)"
    )
    http_timeout_s: float = Field(10.0, gt=0, description="timeout of calls to the payment provider and POS")

    @property
    def ingress_url(self) -> str:
        return f"http://{self.host}:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    @property
    def services_url(self) -> str:
        return f"http://{self.host}:{self.services_port}"

    @property
    def pos_url(self) -> str:
        return f"http://{self.host}:{self.pos_port}"

    @property
    def payment_url(self) -> str:
        return f"http://{self.host}:{self.payment_port}"

    def scaled(self, seconds: float) -> float:
        """A simulated duration in wall-clock seconds under the configured time scale."""
        return seconds / self.time_scale


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
