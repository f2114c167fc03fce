"""The catalog: public, no key needed."""

from fastapi import APIRouter, HTTPException

from foodorder.catalog import MenuItem, Restaurant, load_catalog
from foodorder.gateway.schemas import PathId, problems
from foodorder.models import Location, Model

router = APIRouter(prefix="/api/v1/restaurants", tags=["catalog (public)"])


class RestaurantSummary(Model):
    """A restaurant without its menu."""

    id: str
    name: str
    region: str
    location: Location


@router.get("")
async def list_restaurants() -> list[RestaurantSummary]:
    """Every restaurant with its region and location."""
    return [
        RestaurantSummary(id=r.id, name=r.name, region=r.region, location=r.location)
        for r in load_catalog().restaurants
    ]


@router.get("/{restaurant_id}/menu", responses=problems({404: "no such restaurant"}))
async def menu(restaurant_id: PathId) -> list[MenuItem]:
    """A restaurant's menu; prices in cents."""
    shop: Restaurant | None = load_catalog().restaurant(restaurant_id)
    if shop is None:
        raise HTTPException(404, f"no restaurant {restaurant_id!r}")
    return shop.menu
