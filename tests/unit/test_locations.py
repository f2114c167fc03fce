"""When a driver's twin tells the order of a new position without anyone watching (`twin.news`)."""

from foodorder.delivery.twin import news
from foodorder.models import DriverPosition, Location

NOW = 1_000_000


def position(arrival: int, delivery: str = "d1") -> DriverPosition:
    return DriverPosition(
        driver_id="driver-1", delivery_id=delivery, location=Location(lat=37.3, long=-121.9), arrival=arrival
    )


def test_the_first_position_of_a_delivery_is_news() -> None:
    assert news(None, position(NOW + 600_000), NOW, tolerance_ms=60_000)
    assert news(position(NOW + 600_000, "d0"), position(NOW + 600_000), NOW, tolerance_ms=60_000)


def test_an_eta_that_holds_is_not_news() -> None:
    # Ten minutes left: the arrival moved by 30 s, under the tolerance and a tenth of the time left.
    assert not news(position(NOW + 600_000), position(NOW + 630_000), NOW, tolerance_ms=60_000)


def test_an_eta_that_moved_by_more_than_the_tolerance_and_a_tenth_of_the_time_left_is_news() -> None:
    assert news(position(NOW + 600_000), position(NOW + 690_000), NOW, tolerance_ms=60_000)
    assert news(position(NOW + 600_000), position(NOW + 510_000), NOW, tolerance_ms=60_000)
    # Over the tolerance, but not a tenth of the 30 minutes left.
    assert not news(position(NOW + 1_800_000), position(NOW + 1_890_000), NOW, tolerance_ms=60_000)


def test_any_position_is_news_once_the_arrival_the_order_was_told_has_passed() -> None:
    assert news(position(NOW - 1), position(NOW + 1_000), NOW, tolerance_ms=60_000)
