"""A small SQLite file per stub, so that a restarted stub remembers what it already did."""

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger("foodorder.store")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    # In WAL mode a commit survives the process being killed without waiting for the disk (fsync);
    # only a power cut can lose the last ones. Chaos kills processes, and the stubs stand in for
    # providers off this machine: an fsync per call made the payment stub a tenth of intake's CPU.
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def open_store(path: Path, schema: str, version: int) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite database at `path` with `schema` at `version`.

    A file of another schema version (an older foodorder) is set aside, not migrated: the stubs'
    records are demo data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path)
    found = db.execute("PRAGMA user_version").fetchone()[0]
    has_tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if has_tables and found != version:
        db.close()
        aside = path.with_name(f"{path.name}.schema{found}")
        path.replace(aside)
        log.warning("%s had schema %s, not %s: moved to %s", path, found, version, aside)
        db = _connect(path)
    db.executescript(schema)
    db.execute(f"PRAGMA user_version = {int(version)}")
    return db
