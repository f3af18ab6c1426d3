"""Forked helper processes: whether one can help, and starting one.

A worker is forked, not spawned, so it starts with the parent's program, dialect
and memory already loaded. It never touches the parent's database connection: it
either opens its own or only computes and sends its results through a pipe.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no fork either
    fcntl = None  # type: ignore[assignment]


def cpus() -> int:
    """CPUs this process may use (1 where it cannot fork a worker)."""
    if not can_fork():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def pipe(size: int = 0) -> tuple[Connection, Connection]:
    """(receiving end, sending end) of a one-way pipe between forked processes;
    `size` asks the system for a pipe buffer of that many bytes (Linux), so a
    message that fits is written without waiting for the reader."""
    receiving, sending = multiprocessing.get_context("fork").Pipe(duplex=False)
    if size and fcntl is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # above the system's limit: the default
            fcntl.fcntl(sending.fileno(), fcntl.F_SETPIPE_SZ, size)
    return receiving, sending


def start(target: Callable[..., None], *args: Any) -> multiprocessing.process.BaseProcess:
    """Fork a daemon process running `target(*args)`, started."""
    worker = multiprocessing.get_context("fork").Process(target=target, args=args, daemon=True)
    # Everything alive now is the parent's: the worker's collector leaves it alone
    # (it holds the database connection, which only the parent may touch).
    gc.freeze()
    try:
        worker.start()
    finally:
        gc.unfreeze()
    return worker


def send_error(send: Connection, exc: BaseException) -> None:
    """Hand a worker's failure to its parent as ("error", exception): the exception
    itself, else (it does not pickle) its text; nothing if the parent is gone."""
    for payload in (exc, RuntimeError(f"{type(exc).__name__}: {exc}")):
        try:
            send.send(("error", payload))
            return
        except Exception:  # noqa: BLE001, S112 - the next payload, or give up
            continue
