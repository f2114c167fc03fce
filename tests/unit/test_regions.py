"""Regions of the catalog and the matcher's choice of the nearest driver."""

from foodorder import geo
from foodorder.catalog import load_catalog
from foodorder.delivery.matcher import nearest
from foodorder.models import AvailableDriver, Location

RESTAURANT = Location(lat=37.3318, long=-121.8883)


def waiting(driver_id: str, north_m: float, since: int) -> AvailableDriver:
    return AvailableDriver(driver_id=driver_id, location=geo.offset(RESTAURANT, north_m, 0), since=since)


def test_every_restaurant_names_one_of_three_regions_and_lies_nearest_to_it() -> None:
    catalog = load_catalog()
    assert {shop.region for shop in catalog.restaurants} == {"san-jose", "san-francisco", "oakland"}
    for shop in catalog.restaurants:
        assert catalog.nearest_region(shop.location).id == shop.region


def test_a_shift_belongs_to_the_region_nearest_to_where_it_starts() -> None:
    catalog = load_catalog()
    assert catalog.nearest_region(Location(lat=37.35, long=-121.95)).id == "san-jose"  # Santa Clara
    assert catalog.nearest_region(Location(lat=37.87, long=-122.27)).id == "oakland"  # Berkeley
    assert catalog.nearest_region(Location(lat=37.69, long=-122.47)).id == "san-francisco"  # Daly City


def test_the_nearest_driver_is_chosen() -> None:
    drivers = [waiting("far", 2_000, 1), waiting("near", 100, 3), waiting("middle", 700, 2)]
    assert nearest(drivers, RESTAURANT) == drivers[1]


def test_the_longest_idle_breaks_a_tie_to_the_metre() -> None:
    drivers = [waiting("later", 500.2, 20), waiting("earlier", 500.0, 10)]
    chosen = nearest(drivers, RESTAURANT)
    assert chosen is not None and chosen.driver_id == "earlier"


def test_drivers_who_turned_the_delivery_down_are_skipped() -> None:
    drivers = [waiting("picky", 100, 1), waiting("next", 900, 1)]
    chosen = nearest(drivers, RESTAURANT, excluding=["picky"])
    assert chosen is not None and chosen.driver_id == "next"
    assert nearest(drivers, RESTAURANT, excluding=["picky", "next"]) is None
