"""The catalog: public, no key needed."""

from fastapi import APIRouter, HTTPException

from foodorder.catalog import MenuItem, Restaurant, load_catalog
from foodorder.gateway.schemas import UNAVAILABLE, PathId, RestaurantView, problems
from foodorder.gateway.stores import StoresDep, restaurant_view
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


def catalog_restaurant(restaurant_id: str) -> Restaurant:
    """The catalog's restaurant `restaurant_id`; 404 if there is none."""
    shop = load_catalog().restaurant(restaurant_id)
    if shop is None:
        raise HTTPException(404, f"no restaurant {restaurant_id!r}")
    return shop


@router.get("/{restaurant_id}", responses=problems({404: "no such restaurant"}) | UNAVAILABLE)
async def restaurant(restaurant_id: PathId, stores: StoresDep) -> RestaurantView:
    """A restaurant and its store state now: status, opening hours, which items can be ordered."""
    shop = catalog_restaurant(restaurant_id)
    return restaurant_view(shop, await stores.get(shop.id))


@router.get("/{restaurant_id}/menu", responses=problems({404: "no such restaurant"}))
async def menu(restaurant_id: PathId) -> list[MenuItem]:
    """A restaurant's menu; prices in cents."""
    return catalog_restaurant(restaurant_id).menu
