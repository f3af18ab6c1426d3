"""`loyalty backup`: a consistent copy through SQLite's online backup API, so it
can run while imports or a nightly write (WAL: readers never block)."""

from __future__ import annotations

import glob
import os
import sqlite3
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loyalty_cli.errors import ConflictError, UsageError
from loyalty_cli.lock import stale_pid


@dataclass(frozen=True)
class BackupResult:
    source: str
    file: str
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.file, "bytes": self.bytes}


def backup_database(conn: sqlite3.Connection, dest: Path, *, force: bool = False) -> BackupResult:
    """Copy the database to `dest` while others may be writing.

    The online backup API copies one consistent snapshot. The copy is written
    to a temporary file next to `dest` and renamed into place, so an existing
    backup is only replaced (with force) by a complete new one. The copy is a
    single self-contained file (journal mode DELETE, no -wal beside it).
    """
    if not str(dest).strip():
        raise UsageError("an empty file name; name the backup file")
    dest = Path(dest)
    source = conn.execute("PRAGMA database_list").fetchone()[2]
    if dest.is_dir():
        raise UsageError("is a directory; name a file in it", file=str(dest))
    if source and any(
        dest.absolute() == Path(source + side).absolute() for side in ("-wal", "-shm", "-journal")
    ):
        raise UsageError(
            "is a file SQLite keeps beside the database; choose another", file=str(dest)
        )
    if source and dest.exists() and os.path.samefile(source, dest):
        raise UsageError("is the database itself; choose another file", file=str(dest))
    if dest.exists() and not force:
        raise ConflictError("already exists; use --force to overwrite it", file=str(dest))
    if not dest.parent.is_dir():
        raise UsageError("the directory does not exist", file=str(dest))
    _remove_stale_copies(dest)
    tmp = dest.with_name(f"{_TMP_PREFIX.format(dest.name)}{os.getpid()}")
    try:
        target = sqlite3.connect(tmp)
        try:
            conn.backup(target)
            # A lock held now (the nightly during which this runs) is this host's
            # process's: in a restored copy it would stop every nightly until cleared.
            target.execute("DELETE FROM locks")
            target.commit()
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return BackupResult(source, str(dest), dest.stat().st_size)


# The half-made copy beside the backup file, named for the process writing it.
_TMP_PREFIX = ".{}.tmp-"


def _remove_stale_copies(dest: Path) -> None:
    """Half-made copies of `dest` left by a backup that was killed: each is as big
    as the database, and nothing else would ever remove them."""
    prefix = _TMP_PREFIX.format(dest.name)
    for leftover in dest.parent.glob(glob.escape(prefix) + "*"):
        # The copy, or the journal, WAL or shared memory SQLite kept beside it.
        pid = leftover.name[len(prefix) :]
        for suffix in ("-journal", "-wal", "-shm"):
            pid = pid.removesuffix(suffix)
        if stale_pid(pid):
            with suppress(OSError):
                leftover.unlink()
