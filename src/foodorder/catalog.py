"""The catalog: regions, and restaurants with a region, a location and a menu (demo: data/catalog.json)."""

from functools import lru_cache
from importlib import resources

from pydantic import Field, model_validator

from foodorder import geo
from foodorder.config import get_settings
from foodorder.models import Location, Model


class MenuItem(Model):
    """One dish on a restaurant's menu; prices are in cents."""

    id: str
    name: str
    price: int = Field(ge=0)
    category: str


class Region(Model):
    """A city the platform serves: its drivers are matched only with its restaurants' deliveries."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    name: str
    center: Location


class Restaurant(Model):
    """A restaurant in one region."""

    id: str
    name: str
    region: str
    location: Location
    menu: list[MenuItem]

    def item(self, product_id: str) -> MenuItem | None:
        """The menu item with this id, if the restaurant sells it."""
        return next((item for item in self.menu if item.id == product_id), None)


class Catalog(Model):
    """Every region and every restaurant."""

    regions: list[Region] = Field(min_length=1)
    restaurants: list[Restaurant]

    @model_validator(mode="after")
    def _known_regions(self) -> "Catalog":
        """Every restaurant names a region of the catalog."""
        known = {r.id for r in self.regions}
        for shop in self.restaurants:
            if shop.region not in known:
                raise ValueError(f"restaurant {shop.id!r}: unknown region {shop.region!r}")
        return self

    def region(self, region_id: str) -> Region | None:
        """The region with this id, if there is one."""
        return next((r for r in self.regions if r.id == region_id), None)

    def center_of(self, restaurant_id: str) -> Location:
        """Where the restaurant's customers live: its region's center (a default one for an unknown shop)."""
        shop = self.restaurant(restaurant_id)
        region = self.region(shop.region) if shop else None
        return region.center if region else geo.REGION_CENTER

    def nearest_region(self, location: Location) -> Region:
        """The region whose center is nearest to `location` (great-circle)."""
        return min(self.regions, key=lambda r: geo.distance_m(location, r.center))

    def restaurant(self, restaurant_id: str) -> Restaurant | None:
        """The restaurant with this id, if there is one."""
        return next((r for r in self.restaurants if r.id == restaurant_id), None)


@lru_cache
def load_catalog() -> Catalog:
    """The configured catalog (FOODORDER_CATALOG_FILE), or the demo catalog shipped with the package."""
    path = get_settings().catalog_file
    source = path if path is not None else resources.files("foodorder").joinpath("data/catalog.json")
    return Catalog.model_validate_json(source.read_text())
