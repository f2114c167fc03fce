"""The catalog: restaurants with a location and a menu (the demo one is data/catalog.json)."""

from functools import lru_cache
from importlib import resources

from pydantic import Field

from foodorder.config import get_settings
from foodorder.models import Location, Model


class MenuItem(Model):
    """One dish on a restaurant's menu; prices are in cents."""

    id: str
    name: str
    price: int = Field(ge=0)
    category: str


class Restaurant(Model):
    """A restaurant of the demo region."""

    id: str
    name: str
    location: Location
    menu: list[MenuItem]

    def item(self, product_id: str) -> MenuItem | None:
        """The menu item with this id, if the restaurant sells it."""
        return next((item for item in self.menu if item.id == product_id), None)


class Catalog(Model):
    """Every restaurant, by id."""

    restaurants: list[Restaurant]

    def restaurant(self, restaurant_id: str) -> Restaurant | None:
        """The restaurant with this id, if there is one."""
        return next((r for r in self.restaurants if r.id == restaurant_id), None)


@lru_cache
def load_catalog() -> Catalog:
    """The configured catalog (FOODORDER_CATALOG_FILE), or the demo catalog shipped with the package."""
    path = get_settings().catalog_file
    source = path if path is not None else resources.files("foodorder").joinpath("data/catalog.json")
    return Catalog.model_validate_json(source.read_text())
