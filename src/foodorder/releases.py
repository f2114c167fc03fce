"""Releases of the services: each version of the code is a Restate deployment of its own.

A release is identified by a hash of the foodorder package's files and kept as a copy under
`<data dir>/releases/<version>/`, so that it can still be served after the working tree changed.
Restate pins every invocation to the deployment it started on; a release that is no longer the
newest is served (on a port of its own) until no unfinished invocation is pinned to it, then
retired. Which release a deployment runs is recorded in Restate itself, as deployment metadata.
"""

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from foodorder import introspection

PACKAGE_DIR = Path(__file__).parent
RELEASE_KEY = "foodorder.release"  # the deployment metadata that names its release
DRAIN_CHECK_INTERVAL_S = 10.0
NOT_CODE = ("__pycache__", "*.pyc", ".*")  # compiled and hidden files: neither hashed nor copied


@dataclass(frozen=True)
class Deployment:
    """A deployment registered with Restate, and the release it serves (None: registered without one)."""

    id: str
    uri: str
    release: str | None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the deployment is invoked on."""
        parts = urlsplit(self.uri)
        return parts.hostname or "", parts.port or 80


def _code_files(package_dir: Path) -> list[Path]:
    return sorted(
        path
        for path in package_dir.rglob("*")
        if path.is_file()
        and not any(
            fnmatch(part, pattern) for part in path.relative_to(package_dir).parts for pattern in NOT_CODE
        )
    )


def code_version(package_dir: Path = PACKAGE_DIR) -> str:
    """The release version of the package in `package_dir`: a hash of its files' names and contents."""
    digest = hashlib.sha256()
    for path in _code_files(package_dir):
        content = path.read_bytes()
        # Lengths keep the boundaries between names and contents unambiguous.
        name = path.relative_to(package_dir).as_posix().encode()
        digest.update(b"%d:%s%d:" % (len(name), name, len(content)) + content)
    return digest.hexdigest()[:12]


def releases_dir(data_dir: Path) -> Path:
    """Where the code of every live release is kept."""
    return data_dir / "releases"


def code_path(data_dir: Path, version: str) -> Path:
    """The directory to put on PYTHONPATH to run release `version` (it holds its `foodorder` package)."""
    return releases_dir(data_dir) / version


def snapshot(data_dir: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """Keep a copy of the package's code as a release (once per version); its version."""
    version = code_version(package_dir)
    target = code_path(data_dir, version)
    if not target.exists():
        partial = target.with_name(f"{version}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(package_dir, partial / package_dir.name, ignore=shutil.ignore_patterns(*NOT_CODE))
        partial.rename(target)  # a release directory is complete or absent
    return version


def prune(data_dir: Path, current: str, deployments: list[Deployment]) -> None:
    """Delete the code of every release but the current one and those deployed (and partial copies)."""
    keep = {current} | {d.release for d in deployments if d.release}
    if releases_dir(data_dir).exists():
        for path in releases_dir(data_dir).iterdir():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)


def spare_port(base: int, usable: Callable[[int], bool]) -> int:
    """The first port above `base` that is `usable`."""
    port = base + 1
    while not usable(port):
        port += 1
    return port


class Admin:
    """The deployments side of restate-server's admin API."""

    def __init__(self, admin_url: str) -> None:
        self.url = admin_url

    def deployments(self) -> list[Deployment]:
        """Every registered deployment."""
        response = httpx.get(f"{self.url}/deployments", timeout=30)
        response.raise_for_status()
        return [
            Deployment(d["id"], d["uri"], d.get("metadata", {}).get(RELEASE_KEY))
            for d in response.json()["deployments"]
            if "uri" in d  # HTTP deployments; Lambda ones are none of ours
        ]

    def register(self, uri: str, release: str, replace: bool = False) -> str:
        """Register release `release` at `uri` (again: a no-op); `replace` overwrites a deployment there."""
        body = {"uri": uri, "metadata": {RELEASE_KEY: release}, "force": replace}
        response = httpx.post(f"{self.url}/deployments", json=body, timeout=30)
        response.raise_for_status()
        deployment_id: str = response.json()["id"]
        return deployment_id

    def move(self, deployment_id: str, uri: str) -> None:
        """Have Restate invoke the deployment at `uri` from now on (Restate discovers it there first)."""
        response = httpx.patch(f"{self.url}/deployments/{deployment_id}", json={"uri": uri}, timeout=30)
        response.raise_for_status()

    def delete(self, deployment_id: str) -> None:
        """Remove a deployment from Restate (only ever one that nothing needs any more)."""
        # Restate 1.7 deletes deployments only with force; drained() is what makes this safe.
        response = httpx.delete(
            f"{self.url}/deployments/{deployment_id}", params={"force": "true"}, timeout=30
        )
        response.raise_for_status()

    def pinned(self) -> dict[str, int]:
        """Unfinished invocations per deployment they are pinned to (or running on, before the pin)."""
        rows = introspection.query_blocking(
            self.url,
            "SELECT coalesce(pinned_deployment_id, last_attempt_deployment_id) AS deployment, count(*) AS n"
            " FROM sys_invocation WHERE status != 'completed'"
            " AND coalesce(pinned_deployment_id, last_attempt_deployment_id) IS NOT NULL"
            " GROUP BY coalesce(pinned_deployment_id, last_attempt_deployment_id)",
        )
        return {row["deployment"]: int(row["n"]) for row in rows}

    def newest(self) -> set[str]:
        """The deployments that serve the newest revision of some service (new invocations go there)."""
        response = httpx.get(f"{self.url}/services", timeout=30)
        response.raise_for_status()
        return {service["deployment_id"] for service in response.json()["services"]}

    def drained(self) -> list[Deployment]:
        """Releases that no new invocation goes to and no unfinished invocation needs."""
        in_use = self.newest() | set(self.pinned())
        return [d for d in self.deployments() if d.release is not None and d.id not in in_use]
