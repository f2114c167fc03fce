"""API keys: `Authorization: Bearer <key>`, one set per audience (providers, restaurants, drivers)."""

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from foodorder.config import ANY, OPS_USER, Settings
from foodorder.gateway.limits import limiter
from foodorder.gateway.schemas import PathId

T = TypeVar("T")

bearer = HTTPBearer(auto_error=False, description="an API key issued to a provider, restaurant or driver")


@dataclass(frozen=True)
class Provider:
    """An ordering provider, identified by its key."""

    id: str


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyTable(dict[bytes, T]):
    """API keys by their SHA-256: looking a key up compares digests, so its timing tells nothing of keys."""

    def __init__(self, keys: dict[str, T]) -> None:
        super().__init__((digest(key), value) for key, value in keys.items())


@dataclass(frozen=True)
class Keys:
    """Every audience's API keys."""

    providers: KeyTable[str]
    restaurants: KeyTable[list[str]]
    drivers: KeyTable[list[str]]

    @classmethod
    def of(cls, settings: Settings) -> "Keys":
        return cls(
            KeyTable(settings.provider_keys),
            KeyTable(settings.restaurant_keys),
            KeyTable(settings.driver_keys),
        )


async def _known(
    request: Request, table: KeyTable[T], credentials: HTTPAuthorizationCredentials | None, kind: str
) -> T:
    """What the key sent stands for in `kind`'s `table` (401 if nothing); the call counts against its rate."""
    if credentials is None:
        raise HTTPException(
            401, "missing API key: send Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"}
        )
    key = digest(credentials.credentials)
    if key not in table:
        raise HTTPException(401, f"not a {kind} API key", {"WWW-Authenticate": "Bearer"})
    limit = limiter(request)
    await limit.hit(limit.api, "API calls for this key", "api", key.hex())
    return table[key]


def _keys(request: Request) -> Keys:
    keys: Keys = request.app.state.keys
    return keys


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def provider_from_key(request: Request, credentials: Credentials) -> Provider:
    """The provider whose key was sent; 401 for no key or a key that is not a provider's."""
    return Provider(await _known(request, _keys(request).providers, credentials, "provider"))


def _acting_for(ids: list[str], kind: str, id_: str) -> str:
    """`id_` if the key's `ids` include it (403 otherwise: someone else's)."""
    if ANY not in ids and id_ not in ids:
        raise HTTPException(403, f"this key may not act for {kind} {id_!r}")
    return id_


async def restaurant_from_key(request: Request, restaurant_id: PathId, credentials: Credentials) -> str:
    """The restaurant in the path, if the key may act for it."""
    ids = await _known(request, _keys(request).restaurants, credentials, "restaurant")
    return _acting_for(ids, "restaurant", restaurant_id)


async def driver_from_key(request: Request, driver_id: PathId, credentials: Credentials) -> str:
    """The driver in the path, if the key may act for them."""
    ids = await _known(request, _keys(request).drivers, credentials, "driver")
    return _acting_for(ids, "driver", driver_id)


REALM = "foodorder operations"
basic = HTTPBasic(auto_error=False, realm=REALM)


async def operator(
    request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]
) -> str:
    """The operations user, if the browser sent its password; 401 (and a login prompt) otherwise."""
    password = _settings(request).ops_password.encode()
    if credentials is None or not (
        secrets.compare_digest(credentials.username.encode(), OPS_USER.encode())
        & secrets.compare_digest(credentials.password.encode(), password)
    ):
        raise HTTPException(
            401,
            "the operations pages need the ops user's password",
            {"WWW-Authenticate": f'Basic realm="{REALM}"'},
        )
    return OPS_USER


ProviderDep = Annotated[Provider, Depends(provider_from_key)]
RestaurantDep = Annotated[str, Depends(restaurant_from_key)]
DriverDep = Annotated[str, Depends(driver_from_key)]
OperatorDep = Annotated[str, Depends(operator)]
