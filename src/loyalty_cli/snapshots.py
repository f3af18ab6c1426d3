"""Read-only queries run side by side on one snapshot of the database.

Python's sqlite3 lets other threads run while a statement steps, so on a
machine with two cores the independent queries of a report can run at once,
each on its own connection. They must all read the same committed state: a
write committed between two connections' first reads would give one report
made of two states. A read transaction keeps the snapshot of its first read;
`PRAGMA data_version` on another connection, read before and after the
snapshots are taken, changes if and only if some connection committed in
between. Unchanged, every snapshot is that one state; changed, they are taken
again (three tries, then the queries run one after the other on the caller's
connection, as they do where threads cannot help: an in-memory database, a
connection inside a transaction of its own, a single core).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

from loyalty_cli.db import BUSY_TIMEOUT_MS

TRIES = 3


def database_file(conn: sqlite3.Connection) -> str | None:
    """The file behind `conn`'s main database; None for an in-memory or temporary one."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    return path or None


def _reader(path: str, row_factory: Any) -> sqlite3.Connection:
    # Used by one thread at a time: opened here, handed to a worker, closed here.
    reader = sqlite3.connect(
        path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    reader.row_factory = row_factory
    reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return reader


def _begin(reader: sqlite3.Connection) -> None:
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the snapshot is taken here


@contextmanager
def shared_snapshot(
    conn: sqlite3.Connection, count: int
) -> Iterator[list[sqlite3.Connection] | None]:
    """`count` connections reading one snapshot, or None (use `conn` alone).

    The readers are closed, their read transactions ended, on leaving.
    """
    path = database_file(conn)
    if path is None or conn.in_transaction or count < 2 or (os.cpu_count() or 1) < 2:
        yield None
        return
    with ExitStack() as stack:
        fence = stack.enter_context(_closing(_reader(path, None)))
        for _ in range(TRIES):
            before = fence.execute("PRAGMA data_version").fetchone()[0]
            readers = [
                stack.enter_context(_closing(_reader(path, conn.row_factory))) for _ in range(count)
            ]
            for reader in readers:
                _begin(reader)
            if fence.execute("PRAGMA data_version").fetchone()[0] == before:
                yield readers
                return
            for reader in readers:
                reader.execute("ROLLBACK")
        yield None


@contextmanager
def _closing(reader: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield reader
    finally:
        if reader.in_transaction:
            reader.execute("ROLLBACK")
        reader.close()


@contextmanager
def one_state(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`conn` reading one committed state of the database throughout: a read
    transaction of its own, or the caller's transaction (which sees its own writes)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")


def run_side_by_side(
    conn: sqlite3.Connection, tasks: Sequence[Callable[[sqlite3.Connection], Any]]
) -> list[Any]:
    """Each task's result, the tasks run on one snapshot: all but the last in
    worker threads, the last in this thread (so it may import and parse while
    the workers' SQLite statements run); one after another on `conn` when
    `shared_snapshot` says so, inside one read transaction (or the caller's)."""
    with shared_snapshot(conn, len(tasks)) as readers:
        if readers is None:
            with one_state(conn):
                return [task(conn) for task in tasks]
        with ThreadPoolExecutor(max_workers=len(tasks) - 1) as pool:
            futures = [
                pool.submit(task, reader)
                for task, reader in zip(tasks[:-1], readers[:-1], strict=True)
            ]
            last = tasks[-1](readers[-1])
            return [future.result() for future in futures] + [last]
