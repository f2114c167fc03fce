"""A small SQLite file per stub, so that a restarted stub remembers what it already did."""

import sqlite3
from pathlib import Path


def open_store(path: Path, schema: str, version: int) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite database at `path` with `schema` at `version`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    found = db.execute("PRAGMA user_version").fetchone()[0]
    has_tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if has_tables and found != version:
        raise RuntimeError(
            f"{path} was written by another foodorder version (schema {found}, not {version}): delete it"
        )
    db.executescript(schema)
    db.execute(f"PRAGMA user_version = {int(version)}")
    return db
