"""Coordinates: great-circle distances, ETAs and driver movement."""

import itertools
import math
import random

from foodorder.models import Location

# Downtown San Jose, the default center; demo customers and drivers are placed within
# REGION_RADIUS_M of their region's center.
REGION_CENTER = Location(lat=37.3362, long=-121.8906)
REGION_RADIUS_M = 2_500.0
EARTH_RADIUS_M = 6_371_000.0


def distance_m(a: Location, b: Location) -> float:
    """Great-circle (haversine) distance in metres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlong = math.radians(b.long - a.long)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlong / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def eta_ms(route: list[Location], speed_mps: float) -> float:
    """Milliseconds to travel along the points of `route` at `speed_mps`."""
    metres = sum(distance_m(a, b) for a, b in itertools.pairwise(route))
    return 1000 * metres / speed_mps


def offset(origin: Location, north_m: float, east_m: float) -> Location:
    """The point `north_m` metres north and `east_m` metres east of `origin` (small distances)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlong = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(origin.lat))))
    return Location(lat=origin.lat + dlat, long=origin.long + dlong)


def random_location(rng: random.Random, center: Location = REGION_CENTER) -> Location:
    """A uniformly random point within REGION_RADIUS_M of `center`."""
    radius = REGION_RADIUS_M * math.sqrt(rng.random())
    angle = rng.random() * 2 * math.pi
    return offset(center, radius * math.cos(angle), radius * math.sin(angle))


def step_towards(current: Location, target: Location, step_m: float) -> tuple[Location, bool]:
    """Move up to `step_m` metres from `current` towards `target`; returns (new location, arrived)."""
    remaining = distance_m(current, target)
    if remaining <= step_m:
        return target, True
    f = step_m / remaining
    return Location(
        lat=current.lat + (target.lat - current.lat) * f,
        long=current.long + (target.long - current.long) * f,
    ), False
