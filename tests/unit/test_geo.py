"""Distances, ETAs and movement in the demo region."""

import random

import pytest

from foodorder import geo
from foodorder.models import Location

SAN_JOSE = Location(lat=37.3382, long=-121.8863)
SAN_FRANCISCO = Location(lat=37.7749, long=-122.4194)


def test_distance_is_great_circle() -> None:
    assert geo.distance_m(SAN_JOSE, SAN_FRANCISCO) == pytest.approx(67_700, rel=0.01)
    assert geo.distance_m(SAN_JOSE, SAN_JOSE) == 0


def test_eta_follows_the_route_at_the_configured_speed() -> None:
    one_km_north = geo.offset(SAN_JOSE, 1000, 0)
    assert geo.distance_m(SAN_JOSE, one_km_north) == pytest.approx(1000, rel=1e-3)
    assert geo.eta_ms([SAN_JOSE, one_km_north], speed_mps=10) == pytest.approx(100_000, rel=1e-3)
    assert geo.eta_ms([SAN_JOSE, one_km_north, SAN_JOSE], speed_mps=10) == pytest.approx(200_000, rel=1e-3)


def test_random_locations_stay_in_the_region() -> None:
    rng = random.Random(7)
    points = [geo.random_location(rng) for _ in range(500)]
    assert all(geo.distance_m(p, geo.REGION_CENTER) <= geo.REGION_RADIUS_M + 1 for p in points)
    assert max(geo.distance_m(p, geo.REGION_CENTER) for p in points) > geo.REGION_RADIUS_M / 2


def test_a_driver_reaches_the_target_in_steps_and_never_overshoots() -> None:
    target = geo.offset(SAN_JOSE, 250, -250)
    location, arrived, steps = SAN_JOSE, False, 0
    while not arrived:
        before = geo.distance_m(location, target)
        location, arrived = geo.step_towards(location, target, step_m=30)
        assert geo.distance_m(location, target) < before
        steps += 1
    assert location == target
    assert steps == 12  # 353.6 m in 30 m steps
