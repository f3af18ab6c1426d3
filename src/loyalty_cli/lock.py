"""The nightly lock: an advisory lock row in `locks`, so two nightlies (or a nightly
and an import that asks for the lock) never run at once. A lock whose holder process
is gone from this host is stale and taken over."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from loyalty_cli import db
from loyalty_cli.errors import LockedError, printable

LOCK_NAME = "nightly"
# Locks this process holds now: a row naming our own pid that is not in here
# was left by an earlier process that had the same pid (pids are reused,
# e.g. after a reboot) and is stale.
_held: set[tuple[str, str]] = set()
_held_guard = threading.Lock()


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        if self is _BUSY:
            return (
                "the database stayed busy: another command without the lock (a run, "
                "a redeem) kept writing"
            )
        words = self.command.split()
        label = words[1] if len(words) > 1 and words[0] == "loyalty" else LOCK_NAME
        return (
            f"another {label} (pid {self.pid} on {self.host}, `{self.command}`) "
            f"holds the lock since {self.since}"
        )


_BUSY = LockHolder(0, "", "", "")  # nobody holds the lock, but the write lock was not free


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _db_key(conn: sqlite3.Connection, name: str) -> tuple[str, str]:
    return (conn.execute("PRAGMA database_list").fetchone()[2] or "", name)


@contextmanager
def hold_lock(
    conn: sqlite3.Connection,
    command: str,
    *,
    name: str = LOCK_NAME,
    wait: float = 600.0,
    poll: float = 0.5,
) -> Iterator[LockHolder]:
    """Hold the advisory lock `name` for the duration of the block.

    Waits up to `wait` seconds (polling every `poll`) while another live
    process holds it, then raises LockedError naming the holder. The row is
    deleted in `finally`; after a kill -9 it stays, and the next acquirer on
    the same host sees the dead pid and takes it over.
    """
    me = LockHolder(os.getpid(), socket.gethostname(), printable(command), _utc_now())
    key = _db_key(conn, name)
    deadline = time.monotonic() + max(wait, 0.0)
    # Set just before our INSERT can commit: an exception (SIGTERM turned into
    # SystemExit) between that commit and the `yield` must still release.
    tried: list[bool] = []
    try:
        while True:
            left = deadline - time.monotonic()
            holder = _try_acquire(conn, name, me, key, tried, max(left, poll))
            if holder is None:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockedError(f"{holder.describe()}; gave up after waiting {wait:g} s (--wait)")
            time.sleep(min(poll, left))
        yield me
    finally:
        if tried:
            # The row goes first: until it is gone, another thread of this process
            # must still see the lock as held here, not as a stale row of its pid.
            try:
                with db.transaction(conn):
                    conn.execute(
                        "DELETE FROM locks WHERE name = ? AND pid = ? AND host = ? AND since = ?",
                        (name, me.pid, me.host, me.since),
                    )
            finally:
                with _held_guard:
                    _held.discard(key)


def _try_acquire(
    conn: sqlite3.Connection,
    name: str,
    me: LockHolder,
    key: tuple[str, str],
    tried: list[bool],
    patience: float,
) -> LockHolder | None:
    """Take the lock in one short write transaction; return the live holder if
    someone else has it.

    The holder is read first, outside any write transaction (a reader never
    waits in WAL mode): the holder of the nightly lock is usually inside a long
    write transaction itself, and asking for the write lock would wait on that
    instead of on `--wait`. The write itself waits at most `patience` seconds;
    a database kept busy by a command without the lock (a redeem, a run) is
    reported as such."""
    with _held_guard:
        holder = _holder(conn, name)
        if key in _held:  # another thread of this process holds it
            return holder or me
        if holder is not None and not _is_stale(holder, me):
            return holder
        try:
            with _busy_timeout(conn, patience):
                return _acquire(conn, name, me, key, tried)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return _holder(conn, name) or _BUSY


def _holder(conn: sqlite3.Connection, name: str) -> LockHolder | None:
    row = conn.execute(
        "SELECT pid, host, command, since FROM locks WHERE name = ?", (name,)
    ).fetchone()
    return LockHolder(*row) if row else None


@contextmanager
def _busy_timeout(conn: sqlite3.Connection, seconds: float) -> Iterator[None]:
    conn.execute(f"PRAGMA busy_timeout = {int(min(seconds, db.BUSY_TIMEOUT_MS / 1000) * 1000)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout = {db.BUSY_TIMEOUT_MS}")


def _acquire(
    conn: sqlite3.Connection, name: str, me: LockHolder, key: tuple[str, str], tried: list[bool]
) -> LockHolder | None:
    """The write: take the row unless a live holder has it (checked again, under
    the write lock). The caller holds _held_guard."""
    with db.transaction(conn):
        holder = _holder(conn, name)
        if holder is not None:
            if not _is_stale(holder, me):
                return holder
            conn.execute("DELETE FROM locks WHERE name = ?", (name,))
        tried.append(True)
        conn.execute(
            "INSERT INTO locks (name, pid, host, command, since) VALUES (?, ?, ?, ?, ?)",
            (name, me.pid, me.host, me.command, me.since),
        )
    _held.add(key)
    return None


def _is_stale(holder: LockHolder, me: LockHolder) -> bool:
    """Stale = held on this host by a process that no longer runs. A lock held
    from another host is never judged (we cannot see its processes)."""
    if holder.host != me.host:
        return False
    if holder.pid == me.pid:
        return True  # our pid, but not held by us (see _held): an earlier life
    return not pid_alive(holder.pid, holder.since)


_PID_MAX = 4_194_304  # Linux's highest


def stale_pid(text: str) -> bool:
    """Whether `text`, the pid a leftover file is named for, is a plausible pid of
    another process that is gone (a stray `.x.tmp-99999999999` is not ours: left
    alone, and no overflow in os.kill)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(_PID_MAX)):
        return False
    pid = int(text)
    return 0 < pid <= _PID_MAX and pid != os.getpid() and not pid_alive(pid)


def pid_alive(pid: int, since: str | None = None) -> bool:
    """Is process `pid` running (and, where /proc tells, started before `since`,
    so a reused pid of an unrelated later process does not keep a lock alive)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    if state in ("Z", "X"):
        return False  # a zombie: it has exited, only not yet reaped
    if since is not None and started is not None:
        try:
            taken = dt.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            return True
        # A process that started after the lock was taken cannot be its holder.
        return started <= taken.timestamp() + 2
    return True


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state, start time as a Unix timestamp) from /proc, or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        ticks = os.sysconf("SC_CLK_TCK")
        return fields[0], btime + int(fields[19]) / ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None
