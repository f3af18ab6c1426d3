"""Several connections reading one snapshot (snapshots.py): the same state for
all, taken again when a commit lands between them, and the fallbacks."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from loyalty_cli import snapshots


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(snapshots.os, "cpu_count", lambda: 2)


@pytest.fixture
def table(conn, two_cores):
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    return conn


def count(reader: sqlite3.Connection) -> int:
    return reader.execute("SELECT COUNT(*) FROM t").fetchone()[0]


def write(path: str) -> None:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("INSERT INTO t VALUES (2)")
    other.close()


def test_readers_keep_their_snapshot_while_others_commit(table):
    with snapshots.shared_snapshot(table, 3) as readers:
        assert readers is not None and len(readers) == 3
        table.execute("INSERT INTO t VALUES (2)")
        assert [count(r) for r in readers] == [1, 1, 1]
        assert count(table) == 2
    for reader in readers:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            reader.execute("SELECT 1")


def test_a_commit_between_two_snapshots_takes_them_again(table, monkeypatch):
    path = snapshots.database_file(table)
    real_begin, begun = snapshots._begin, []

    def begin_then_commit_once(reader):
        real_begin(reader)
        begun.append(reader)
        if len(begun) == 1:
            write(path)  # lands after the first reader's snapshot, before the second's

    monkeypatch.setattr(snapshots, "_begin", begin_then_commit_once)
    with snapshots.shared_snapshot(table, 2) as readers:
        assert readers is not None
        assert [count(r) for r in readers] == [2, 2]
    assert len(begun) == 4  # two tries of two


def test_commits_on_every_try_fall_back_to_the_callers_connection(table, monkeypatch):
    path = snapshots.database_file(table)
    real_begin = snapshots._begin

    def begin_then_commit(reader):
        real_begin(reader)
        write(path)

    monkeypatch.setattr(snapshots, "_begin", begin_then_commit)
    with snapshots.shared_snapshot(table, 2) as readers:
        assert readers is None


def test_no_readers_where_they_cannot_share_the_callers_view(table, monkeypatch):
    memory = sqlite3.connect(":memory:")
    with snapshots.shared_snapshot(memory, 2) as readers:
        assert readers is None
    table.execute("BEGIN")
    with snapshots.shared_snapshot(table, 2) as readers:
        assert readers is None
    table.execute("ROLLBACK")
    monkeypatch.setattr(snapshots.os, "cpu_count", lambda: 1)
    with snapshots.shared_snapshot(table, 2) as readers:
        assert readers is None


def test_run_side_by_side_keeps_task_order_and_runs_in_threads(table):
    threads: dict[int, str] = {}

    def task(n):
        def run(reader):
            threads[n] = threading.current_thread().name
            return n, count(reader), reader is table

        return run

    results = snapshots.run_side_by_side(table, [task(0), task(1), task(2)])
    assert results == [(0, 1, False), (1, 1, False), (2, 1, False)]
    main = threading.main_thread().name
    assert threads[2] == main and main not in (threads[0], threads[1])  # workers, then this


def test_run_side_by_side_raises_a_workers_error(table):
    def boom(reader):
        raise ValueError("worker failed")

    with pytest.raises(ValueError, match="worker failed"):
        snapshots.run_side_by_side(table, [boom, count])


def test_one_after_another_the_tasks_still_read_one_snapshot(table, monkeypatch):
    """On one core (or after the fence failed three times) the tasks run on the
    caller's connection, inside one read transaction: a commit between two tasks
    is not seen by the second."""
    monkeypatch.setattr(snapshots.os, "cpu_count", lambda: 1)
    path = snapshots.database_file(table)

    def first(reader):
        n = count(reader)
        write(path)  # another connection commits between the two tasks
        return n

    assert snapshots.run_side_by_side(table, [first, count]) == [1, 1]
    assert not table.in_transaction and count(table) == 2
