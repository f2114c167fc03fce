"""A release is named by its code: the same files give the same version, any change a new one."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from foodorder import releases


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the foodorder package to change."""
    copy = tmp_path / "src" / "foodorder"
    shutil.copytree(releases.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_same_code_is_the_same_release(package: Path) -> None:
    assert releases.code_version(package) == releases.code_version(releases.PACKAGE_DIR)


def test_compiled_files_do_not_change_the_release(package: Path) -> None:
    before = releases.code_version(package)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\x00compiled")
    assert releases.code_version(package) == before


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "ordering" / "workflow.py").write_text(
            (p / "ordering" / "workflow.py").read_text() + "\n"
        ),
        lambda p: (p / "data" / "catalog.json").write_text("{}"),
        lambda p: (p / "ordering" / "offers.py").write_text(""),
        lambda p: (p / "geo.py").rename(p / "geography.py"),
    ],
    ids=["an edit", "data", "a new module", "a rename"],
)
def test_any_change_to_the_code_is_a_new_release(package: Path, change: Callable[[Path], object]) -> None:
    before = releases.code_version(package)
    change(package)
    assert releases.code_version(package) != before


def test_a_snapshot_keeps_the_code_of_a_release_after_the_tree_changed(package: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    version = releases.snapshot(data, package)
    (package / "geo.py").write_text("changed")

    kept = releases.code_path(data, version) / "foodorder"
    assert releases.code_version(kept) == version
    assert releases.snapshot(data, package) != version
    releases.prune(data, releases.code_version(package), deployments=[])
    assert not releases.code_path(data, version).exists()
    assert releases.code_path(data, releases.code_version(package)).exists()


def test_a_moved_release_takes_the_first_usable_port_above_the_services_port() -> None:
    taken = {9081, 9082, 9084}
    assert releases.spare_port(9080, lambda port: port not in taken) == 9083


def test_a_deployment_is_addressed_by_its_uri() -> None:
    deployment = releases.Deployment("dp_1", "http://127.0.0.1:9081/", "abc")
    assert deployment.address == ("127.0.0.1", 9081)
