"""API keys: `Authorization: Bearer <key>`, one set per audience (providers, restaurants, drivers)."""

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from foodorder.config import ANY, OPS_USER, Settings
from foodorder.gateway.schemas import PathId

bearer = HTTPBearer(auto_error=False, description="an API key issued to a provider, restaurant or driver")


@dataclass(frozen=True)
class Provider:
    """An ordering provider, identified by its key."""

    id: str


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _key(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise HTTPException(
            401, "missing API key: send Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"}
        )
    return credentials.credentials


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def provider_from_key(request: Request, credentials: Credentials) -> Provider:
    """The provider whose key was sent; 401 for no key or a key that is not a provider's."""
    provider = _settings(request).provider_keys.get(_key(credentials))
    if provider is None:
        raise HTTPException(401, "not a provider API key", {"WWW-Authenticate": "Bearer"})
    return Provider(provider)


def _acting_for(keys: dict[str, list[str]], credentials: Credentials, kind: str, id_: str) -> str:
    """`id_` if the key is one of `kind`'s and may act for it (401 unknown key, 403 someone else's)."""
    ids = keys.get(_key(credentials))
    if ids is None:
        raise HTTPException(401, f"not a {kind} API key", {"WWW-Authenticate": "Bearer"})
    if ANY not in ids and id_ not in ids:
        raise HTTPException(403, f"this key may not act for {kind} {id_!r}")
    return id_


def restaurant_from_key(request: Request, restaurant_id: PathId, credentials: Credentials) -> str:
    """The restaurant in the path, if the key may act for it."""
    return _acting_for(_settings(request).restaurant_keys, credentials, "restaurant", restaurant_id)


def driver_from_key(request: Request, driver_id: PathId, credentials: Credentials) -> str:
    """The driver in the path, if the key may act for them."""
    return _acting_for(_settings(request).driver_keys, credentials, "driver", driver_id)


REALM = "foodorder operations"
basic = HTTPBasic(auto_error=False, realm=REALM)


def operator(request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]) -> str:
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
