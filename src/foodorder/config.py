"""One Settings object for every foodorder process, read from FOODORDER_* environment variables."""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

import limits
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PROVIDER_KEY = "dev-provider-key"
DEV_RESTAURANT_KEY = "dev-restaurant-key"
DEV_DRIVER_KEY = "dev-driver-key"
DEV_STOREFRONT_KEY = "dev-storefront-key"
DEV_OPS_PASSWORD = "dev-ops-password"
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
DEV_KEYS = {
    DEV_PROVIDER_KEY,
    DEV_RESTAURANT_KEY,
    DEV_DRIVER_KEY,
    DEV_STOREFRONT_KEY,
    DEV_OPS_PASSWORD,
    DEV_WEBHOOK_SECRET,
}
# Only these processes get a secret in their environment; the other processes get it blank.
SECRETS: dict[str, set[str]] = {
    "provider_keys": {"gateway"},
    "restaurant_keys": {"gateway"},
    "driver_keys": {"gateway"},
    "storefront_key": {"gateway"},
    "ops_password": {"gateway"},
    "pos_restaurant_key": {"pos"},
    # The gateway checks inbound orders with them, the services sign status events, the receiver
    # stub checks what it receives.
    "provider_webhooks": {"gateway", "services", "receiver"},
}
OPS_USER = "ops"
STOREFRONT = "storefront"
ANY = "*"


class ProviderWebhook(BaseModel):
    """Where a provider hears of its orders' status changes, and the secret both directions sign with."""

    url: AnyHttpUrl
    secret: str = Field(min_length=16)


class Settings(BaseSettings):
    """Ports, timings and limits; every field is FOODORDER_<NAME> in the environment."""

    # populate_by_name: the fields named apart from their variable (see env_name) take their own name too.
    model_config = SettingsConfigDict(env_prefix="FOODORDER_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", description="bind address of every process but the gateway")
    public_host: str = Field("127.0.0.1", description="the gateway's bind address")
    ingress_port: int = 8080
    admin_port: int = 9070
    node_port: int = 5122
    restate_nodes: int = Field(
        1,
        ge=1,
        le=9,
        description="restate-server nodes in one replicated cluster; node n uses each Restate port + n - 1",
    )
    restate_ingress_urls: list[AnyHttpUrl] | None = Field(
        None,
        min_length=1,
        description="Restate's ingress, a base URL per node (or balancer); unset: `foodorder up`'s nodes",
    )
    restate_admin_urls: list[AnyHttpUrl] | None = Field(
        None,
        min_length=1,
        description="Restate's admin API, a base URL per node (or balancer); unset: `foodorder up`'s nodes",
    )
    services_port: int = 9080
    services_server: Literal["hypercorn", "granian"] = Field(
        "granian", description="the services endpoint's HTTP/2 server (see Performance in the README)"
    )
    services_workers: int = Field(1, ge=1, description="processes of the services endpoint (granian only)")
    pos_port: int = 5050
    payment_port: int = 5060
    gateway_port: int = 3000
    receiver_port: int = 5070
    # Named apart from the properties every reader uses (pos_url …), which fall back to host and port.
    pos_url_setting: AnyHttpUrl | None = Field(
        None,
        validation_alias="FOODORDER_POS_URL",
        description="the restaurant POS's base URL; unset: the POS stub `foodorder up` runs on pos_port",
    )
    payment_url_setting: AnyHttpUrl | None = Field(
        None,
        validation_alias="FOODORDER_PAYMENT_URL",
        description="the payment provider's base URL; unset: the stub `foodorder up` runs on payment_port",
    )
    gateway_url_setting: AnyHttpUrl | None = Field(
        None,
        validation_alias="FOODORDER_GATEWAY_URL",
        description="the gateway's base URL for the other processes; unset: on public_host and gateway_port",
    )

    data_dir: Path = Path(".foodorder")
    catalog_file: Path | None = Field(
        None, description="restaurants and menus (JSON like data/catalog.json); default: the demo catalog"
    )
    time_scale: float = Field(1.0, gt=0, description="every simulated duration is divided by this")
    drivers: int = Field(
        6, ge=0, description="simulated drivers started by `foodorder up`, spread over the catalog's regions"
    )
    driver_decline_share: float = Field(
        0.1, ge=0, le=1, description="share of delivery offers the simulated drivers decline"
    )

    driver_speed_mps: float = Field(12.0, gt=0, description="driver speed used for moves and ETAs")
    preparation_s: float = Field(5.0, ge=0, description="how long the POS stub takes to prepare an order")
    move_interval_s: float = Field(1.0, gt=0, description="how often a simulated driver moves one step")
    location_report_interval_s: float = Field(
        5.0, ge=0, description="how often a simulated driver's phone reports its location"
    )
    payment_decline_above: float = Field(
        100_000, ge=0, description="the payment stub declines charges above this amount (cents)"
    )
    http_timeout_s: float = Field(10.0, gt=0, description="timeout of calls to the payment provider and POS")
    fault_rate: float = Field(
        0.0, ge=0, le=1, description="share of writes the payment and POS stubs disturb (foodorder chaos)"
    )
    payment_latency_s: float = Field(
        0.0, ge=0, description="the payment stub answers authorizations this late"
    )
    pos_refusal_rate: float = Field(0.0, ge=0, le=1, description="share of orders the POS stub refuses")
    pos_refused_products: list[str] = Field(
        default_factory=list, description="the POS stub refuses every order with one of these products"
    )
    pos_held_products: list[str] = Field(
        default_factory=list,
        description="the POS stub holds every order with one of these products for a person to accept",
    )
    pos_failing_products: dict[str, int] = Field(
        default_factory=dict,
        description="the POS stub answers /prepare with this HTTP status for every order with this product",
    )

    accept_deadline_s: float = Field(
        600.0,
        gt=0,
        description="an order the restaurant has not accepted this long after it got it is rejected",
    )
    restaurant_timeout_s: float = Field(
        1800.0, gt=0, description="an order not reported ready this long after it was sent is cancelled"
    )
    driver_search_timeout_s: float = Field(
        1800.0, gt=0, description="an order that found no driver this long after it was ready is cancelled"
    )
    driver_silence_timeout_s: float = Field(
        120.0, gt=0, description="an assigned driver silent this long before pickup is replaced"
    )
    offer_timeout_s: float = Field(
        30.0, gt=0, description="a driver who does not answer a delivery offer this long lets it lapse"
    )
    offer_misses_off_duty: int = Field(
        3, ge=1, description="a driver who lets this many offers in a row lapse is taken off duty"
    )

    retention_days: float = Field(
        7.0, gt=0, description="how long an ended order stays readable before its state is cleared"
    )

    dev_mode: bool = Field(True, description="allow the published dev keys; set false in production")
    provider_keys: dict[str, str] = Field(
        default_factory=lambda: {DEV_PROVIDER_KEY: "dev-provider", DEV_STOREFRONT_KEY: STOREFRONT},
        description="API key -> provider id",
    )
    restaurant_keys: dict[str, list[str]] = Field(
        default_factory=lambda: {DEV_RESTAURANT_KEY: [ANY]},
        description="API key -> restaurant ids it may act for ('*' for all)",
    )
    driver_keys: dict[str, list[str]] = Field(
        default_factory=lambda: {DEV_DRIVER_KEY: [ANY]},
        description="API key -> driver ids it may act for ('*' for all)",
    )
    pos_restaurant_key: str = Field(DEV_RESTAURANT_KEY, description="the POS stub's key for the public API")
    storefront_key: str = Field(
        DEV_STOREFRONT_KEY, description="the web storefront's provider key (used on the server side only)"
    )
    ops_password: str = Field(
        DEV_OPS_PASSWORD, description="password of the user `ops` for the operations dashboard (HTTP Basic)"
    )
    provider_webhooks: dict[str, ProviderWebhook] = Field(
        default_factory=dict,
        description="provider id -> {url, secret}: signed order webhooks in, signed status webhooks out",
    )
    webhook_retry_hours: float = Field(
        24.0, gt=0, description="a status webhook not acknowledged this long after its event is marked failed"
    )
    stale_after_s: float = Field(
        300.0, gt=0, description="/ops highlights an active order that has kept its status this long"
    )
    request_identity_keys: list[str] = Field(
        default_factory=list,
        description="public keys (publickeyv1_…) whose signed requests the services endpoint accepts",
    )
    max_body_bytes: int = Field(64 * 1024, gt=0, description="largest request body the gateway reads")
    client_timeout_s: float = Field(
        10.0, gt=0, description="the gateway closes a connection that has not sent a whole request by then"
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="proxies whose X-Forwarded-For names the client (addresses or networks)",
    )
    streams_per_address: int = Field(20, ge=1, description="open event streams per client address")
    streams_per_key: int = Field(1000, ge=1, description="open event streams per API key")
    streams_total: int = Field(5000, ge=1, description="open event streams in the gateway")
    stream_max_s: float = Field(
        300.0, gt=0, description="an event stream ends after this long; the client resumes with Last-Event-ID"
    )
    stream_keepalive_s: float = Field(
        10.0, gt=0, description="a quiet event stream sends a comment this often"
    )
    stream_batch_s: float = Field(
        1.0, ge=0, description="a watched order's changes within this long are read from Restate together"
    )
    storefront_rate_limit: str = Field(
        "30/minute", description="storefront quotes, checkouts and cancels per client address"
    )
    api_rate_limit: str = Field("100/second", description="public API calls per API key")

    @field_validator("storefront_rate_limit", "api_rate_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError as error:
            raise ValueError(f"expected a rate like '30/minute' or '10/second;500/hour': {error}") from None
        return value

    # The seed's location path: phones publish to the Kafka topic driver-updates, which a Restate
    # subscription delivers to the driver twins; `ingress` sends them to the twins directly instead.
    location_transport: Literal["kafka", "ingress"] = Field(
        "kafka", description="how drivers' location events reach their twins"
    )
    kafka_bootstrap: str | None = Field(
        None, description="an external Kafka cluster (host:port,...); unset: the embedded broker"
    )
    kafka_port: int = Field(9092, description="the embedded broker's port (on `host`)")
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP base URL (http://host:4318) every process exports its traces to; unset: none",
    )

    @model_validator(mode="after")
    def _no_dev_keys_outside_development(self) -> "Settings":
        keys = {
            *self.provider_keys,
            *self.restaurant_keys,
            *self.driver_keys,
            self.pos_restaurant_key,
            self.storefront_key,
            self.ops_password,
            *(webhook.secret for webhook in self.provider_webhooks.values()),
        }
        if not self.dev_mode and keys & DEV_KEYS:
            raise ValueError("dev API keys are configured but FOODORDER_DEV_MODE is false: set real keys")
        if not loopback(self.public_host) and keys & DEV_KEYS:
            raise ValueError(
                f"FOODORDER_PUBLIC_HOST={self.public_host} exposes the gateway while a dev key or the dev"
                " ops password is configured: set your own keys and FOODORDER_OPS_PASSWORD"
            )
        if not loopback(self.host) and not self.request_identity_keys:
            raise ValueError(
                f"FOODORDER_HOST={self.host} exposes the internal processes without request identity:"
                " set FOODORDER_REQUEST_IDENTITY_KEYS (or keep FOODORDER_HOST on loopback)"
            )
        # Processes other than the gateway get the API keys blank (see SECRETS).
        if self.provider_keys and self.storefront_key not in self.provider_keys:
            raise ValueError("FOODORDER_STOREFRONT_KEY must be one of FOODORDER_PROVIDER_KEYS")
        return self

    def without_secrets(self, process: str) -> "Settings":
        """These settings with every secret `process` does not use blanked."""
        blank: dict[str, object] = {
            "provider_keys": {},
            "restaurant_keys": {},
            "driver_keys": {},
            "provider_webhooks": {},
        }
        return self.model_copy(
            update={name: blank.get(name, "") for name, users in SECRETS.items() if process not in users}
        )

    @property
    def storefront_provider(self) -> str:
        """The provider id the web storefront orders as."""
        return self.provider_keys[self.storefront_key]

    @property
    def identity_key_file(self) -> Path:
        """restate-server's private key for signing requests to the services endpoint."""
        return self.data_dir / "restate-identity.pem"

    @property
    def embedded_broker(self) -> bool:
        """Whether `foodorder up` runs a Kafka broker of its own (Kafka transport, no external cluster)."""
        return self.location_transport == "kafka" and self.kafka_bootstrap is None

    @property
    def kafka_servers(self) -> str:
        """The bootstrap servers of the Kafka cluster that carries driver-updates."""
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def ingress_url(self) -> str:
        """The first node's ingress (the only one on a single node)."""
        return self.ingress_urls[0]

    @property
    def admin_url(self) -> str:
        """The first node's admin API (the only one on a single node)."""
        return self.admin_urls[0]

    @property
    def ingress_urls(self) -> list[str]:
        """Every Restate node's ingress: each takes any invocation and routes it to its partition's leader."""
        return bases(self.restate_ingress_urls) or self.local_ingress_urls

    @property
    def admin_urls(self) -> list[str]:
        """Every Restate node's admin API: each serves the whole cluster's metadata and SQL introspection."""
        return bases(self.restate_admin_urls) or self.local_admin_urls

    @property
    def local_ingress_urls(self) -> list[str]:
        """The ingress of each node `foodorder up` runs (on `host`, from ingress_port on)."""
        return self._on_each_node(self.ingress_port)

    @property
    def local_admin_urls(self) -> list[str]:
        """The admin API of each node `foodorder up` runs (on `host`, from admin_port on)."""
        return self._on_each_node(self.admin_port)

    def _on_each_node(self, port: int) -> list[str]:
        return [f"http://{self.host}:{port + n}" for n in range(self.restate_nodes)]

    @property
    def node_urls(self) -> list[str]:
        """Every Restate node's node-to-node address (what the nodes and restatectl connect to)."""
        return self._on_each_node(self.node_port)

    @property
    def restate_ports(self) -> list[int]:
        """Every port the Restate nodes listen on: ingress, admin API and node port of each."""
        return [
            port + n
            for port in (self.ingress_port, self.admin_port, self.node_port)
            for n in range(self.restate_nodes)
        ]

    @property
    def services_url(self) -> str:
        return f"http://{self.host}:{self.services_port}"

    @property
    def gateway_url(self) -> str:
        """The gateway's address for the other processes: FOODORDER_GATEWAY_URL, or on this machine."""
        if self.gateway_url_setting is not None:
            return base(self.gateway_url_setting)
        host = "127.0.0.1" if self.public_host in ("0.0.0.0", "::") else self.public_host
        return f"http://{host}:{self.gateway_port}"

    @property
    def pos_url(self) -> str:
        """The restaurant POS: FOODORDER_POS_URL, or the stub on `host`."""
        if self.pos_url_setting is not None:
            return base(self.pos_url_setting)
        return f"http://{self.host}:{self.pos_port}"

    @property
    def payment_url(self) -> str:
        """The payment provider: FOODORDER_PAYMENT_URL, or the stub on `host`."""
        if self.payment_url_setting is not None:
            return base(self.payment_url_setting)
        return f"http://{self.host}:{self.payment_port}"

    @property
    def stubs(self) -> list[str]:
        """The stand-ins for outside systems that `foodorder up` runs: those without a URL of their own."""
        return [
            name
            for name, url in (("payment", self.payment_url_setting), ("pos", self.pos_url_setting))
            if url is None
        ]

    @property
    def receiver_url(self) -> str:
        return f"http://{self.host}:{self.receiver_port}"

    def receiver_endpoint(self, provider: str) -> str:
        """The webhook receiver stub's URL for `provider`'s status events."""
        return f"{self.receiver_url}/providers/{provider}/events"

    @property
    def receiver_wanted(self) -> bool:
        """Whether a provider's webhook points at the receiver stub (then the stack runs it)."""
        return any(str(w.url).startswith(self.receiver_url) for w in self.provider_webhooks.values())

    def scaled(self, seconds: float) -> float:
        """A simulated duration in wall-clock seconds under the configured time scale."""
        return seconds / self.time_scale


def base(url: AnyHttpUrl) -> str:
    """A base URL to append paths to ("/ledger"): without the slash pydantic adds to a bare host."""
    return str(url).rstrip("/")


def bases(urls: list[AnyHttpUrl] | None) -> list[str]:
    """Base URLs (see `base`); none when unset."""
    return [base(url) for url in urls or []]


def env_name(field: str) -> str:
    """The environment variable of a Settings field (FOODORDER_<FIELD>, unless it is named apart)."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"FOODORDER_{field.upper()}"


def problems(error: ValidationError) -> str:
    """What is wrong with the settings, in one line that names each bad setting by its variable."""

    def problem(details: ErrorDetails) -> str:
        message = details["msg"].removeprefix("Value error, ")
        if not details["loc"]:  # a rule across settings: its message names them
            return message
        name = str(details["loc"][0])  # a field's name, or the variable of one named apart
        return f"{env_name(name) if name in Settings.model_fields else name}: {message}"

    return "; ".join(problem(details) for details in error.errors())


def loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
