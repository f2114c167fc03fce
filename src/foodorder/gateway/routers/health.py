"""Liveness and readiness."""

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from foodorder.clients.restate import RestateApi

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The gateway process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Restate unreachable or services not registered"}})
async def readyz(request: Request) -> JSONResponse:
    """Restate answers and the foodorder services are registered with it."""
    admin: RestateApi = request.app.state.admin
    # Any node's admin API answers for the whole cluster: ready while one of them does.
    try:
        health = await admin.request("GET", "/health", timeout=2)
        services = await admin.request("GET", "/services", timeout=2)
    except httpx.HTTPError as error:
        return JSONResponse({"status": "unavailable", "detail": f"restate admin: {error}"}, status_code=503)
    names = {s["name"] for s in services.json().get("services", [])} if services.is_success else set()
    if not health.is_success or "order-workflow" not in names:
        return JSONResponse({"status": "unavailable", "detail": "services not registered"}, status_code=503)
    return JSONResponse({"status": "ready"})
