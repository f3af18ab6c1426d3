"""Program versions in the database (table program_versions).

A program is applied as a new version, in force from its effective date. The
version in force on a date D is the one with the greatest effective_from <= D
(ties: the highest version number). Stored versions are never edited or
deleted, so posted history always has the program that scored it.

Import through `loyalty_cli.program`, which re-exports everything here.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from loyalty_cli import db
from loyalty_cli.errors import ConflictError, NoProgramError, ProgramError
from loyalty_cli.money import exponent
from loyalty_cli.program import FIRST_DAY, Program, parse_program, read_program_file


@dataclass(frozen=True)
class ProgramVersion:
    version: int
    name: str
    effective_from: dt.date
    sha256: str
    applied_at: str
    source_file: str | None
    yaml: str
    program: Program
    created: bool = True  # False when apply_program found it already applied


_COLUMNS = "version, name, effective_from, applied_at, source_file, sha256, yaml"
# Parsed programs by content hash: the same YAML is validated once per process.
_PARSED: dict[str, Program] = {}


def _row_to_version(row: sqlite3.Row) -> ProgramVersion:
    sha = row["sha256"]
    program = _PARSED.get(sha)
    if program is None:
        program = parse_program(
            row["yaml"], source=f"program version {row['version']}", stored=True
        )
        _PARSED[sha] = program
    return ProgramVersion(
        version=row["version"],
        name=row["name"],
        effective_from=dt.date.fromisoformat(row["effective_from"]),
        sha256=sha,
        applied_at=row["applied_at"],
        source_file=row["source_file"],
        yaml=row["yaml"],
        program=program,
    )


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def list_versions(conn: sqlite3.Connection) -> list[ProgramVersion]:
    """All versions, oldest (lowest number) first."""
    cur = conn.execute(f"SELECT {_COLUMNS} FROM program_versions ORDER BY version")
    cur.row_factory = sqlite3.Row  # type: ignore[assignment]
    return [_row_to_version(row) for row in cur]


def version_in_force(conn: sqlite3.Connection, on: dt.date) -> ProgramVersion | None:
    """The version with the greatest effective_from <= on (ties: highest version)."""
    cur = conn.execute(
        f"SELECT {_COLUMNS} FROM program_versions WHERE effective_from <= ? "
        "ORDER BY effective_from DESC, version DESC LIMIT 1",
        (on.isoformat(),),
    )
    cur.row_factory = sqlite3.Row  # type: ignore[assignment]
    row = cur.fetchone()
    return _row_to_version(row) if row else None


def current_version(
    conn: sqlite3.Connection, today: dt.date | None = None
) -> ProgramVersion | None:
    """The version in force today (or on `today`)."""
    return version_in_force(conn, today or dt.date.today())


def require_program(conn: sqlite3.Connection, on: dt.date | None = None) -> ProgramVersion:
    """The version in force on `on` (default today); NoProgramError when there is none."""
    on = on or dt.date.today()
    found = version_in_force(conn, on)
    if found is not None:
        return found
    first = conn.execute("SELECT min(effective_from) FROM program_versions").fetchone()[0]
    if first is None:
        raise NoProgramError()
    raise NoProgramError(f"no program version is in force on {on}; the first starts on {first}")


def versions_by_number(conn: sqlite3.Connection) -> dict[int, ProgramVersion]:
    """{version number: ProgramVersion} (programs parsed once per process)."""
    return {v.version: v for v in list_versions(conn)}


class VersionTimeline:
    """Which version is in force on a date, by bisection (for scoring many receipts)."""

    def __init__(self, versions: list[ProgramVersion]) -> None:
        self._versions = sorted(versions, key=lambda v: (v.effective_from, v.version))
        self._dates = [v.effective_from for v in self._versions]
        self.by_number = {v.version: v for v in versions}

    def get(self, on: dt.date) -> ProgramVersion | None:
        i = bisect.bisect_right(self._dates, on)
        return self._versions[i - 1] if i else None

    def at(self, on: dt.date) -> ProgramVersion:
        found = self.get(on)
        if found is None:
            if not self._versions:
                raise NoProgramError()
            raise NoProgramError(
                f"no program version is in force on {on}; the first starts on {self._dates[0]}"
            )
        return found

    def __len__(self) -> int:
        return len(self._versions)

    def __iter__(self) -> Iterator[ProgramVersion]:
        return iter(self._versions)

    @property
    def latest(self) -> ProgramVersion | None:
        """The most recently applied version (highest number)."""
        return self.by_number[max(self.by_number)] if self.by_number else None


def versions_timeline(conn: sqlite3.Connection) -> VersionTimeline:
    return VersionTimeline(list_versions(conn))


def same_currency(versions: list[ProgramVersion], program: Program, text: str, source: str) -> None:
    """A shop's amounts are stored in one currency's minor units and summed across
    versions (revenue, lifetime spend), so a new version may not change it."""
    for version in versions:
        if version.program.currency.upper() != program.currency.upper():
            line = next(
                (n for n, row in enumerate(text.splitlines(), 1) if row.startswith("currency:")),
                None,
            )
            raise ProgramError(
                f"{program.currency} is not the currency of version {version.version} "
                f"({version.program.currency}): a shop's history is kept in one currency",
                file=source,
                line=line,
                field="currency",
            )


def _history_currency(conn: sqlite3.Connection, program: Program, source: str) -> None:
    """Purchases imported before any program were read as written, or as EUR when the
    file named no currency. The first program must be able to count them: refused
    when a row named another currency, or its amounts were read with another number
    of decimals than the program's currency has (a file without a currency column
    read as EUR cents for a JPY shop). A row stored as EUR in another 2-decimal
    shop is taken as the file's default, not its statement."""
    from loyalty_cli.importing.dialect import DEFAULT_CURRENCY

    currency = program.currency.upper()
    for other, import_id in conn.execute(
        "SELECT currency, MIN(import_id) FROM purchases WHERE undone = 0 AND currency IS NOT NULL "
        "AND upper(currency) != ? GROUP BY currency ORDER BY MIN(id)",
        (currency,),
    ):
        if other.upper() == DEFAULT_CURRENCY and exponent(other) == exponent(currency):
            continue
        raise ConflictError(
            f"purchases in {other.upper()} were imported before any program "
            f"(import {import_id}) and cannot be counted in {currency}: undo that import "
            f"(loyalty import undo {import_id}), apply the program, then import the file again",
            file=source,
            field="currency",
        )


def posted_through(conn: sqlite3.Connection) -> dt.date | None:
    """The as-of date of the latest run: what is posted up to it stays as posted."""
    day = conn.execute("SELECT MAX(as_of) FROM runs").fetchone()[0]
    return dt.date.fromisoformat(day) if day else None


def already_applied(
    conn: sqlite3.Connection,
    path: str | Path,
    effective: dt.date | None = None,
    today: dt.date | None = None,
) -> ProgramVersion | None:
    """The version `apply_program` would keep instead of storing a new one (the
    same file applied already), else None; raises what it would raise (an invalid
    file, another currency). Reads only: asked before a question on a terminal."""
    text, raw = read_program_file(path)
    program = parse_program(text, source=str(path))
    kept = _kept_or_start(
        conn, program, text, str(path), _sha256(raw), effective, today or dt.date.today()
    )
    return kept if isinstance(kept, ProgramVersion) else None


def _kept_or_start(
    conn: sqlite3.Connection,
    program: Program,
    text: str,
    path: str,
    sha: str,
    effective: dt.date | None,
    today: dt.date,
) -> ProgramVersion | dt.date:
    """The version already applied that this file is (created=False), or the date a
    new version of it would take effect."""
    explicit = effective or program.effective_from
    versions = list_versions(conn)
    same_currency(versions, program, text, path)
    if not versions:
        _history_currency(conn, program, path)
    latest = versions[-1] if versions else None
    in_force = VersionTimeline(versions).get(today)
    if explicit is None:
        for candidate in (latest, in_force):
            if candidate is not None and candidate.sha256 == sha:
                return replace(candidate, created=False)
    when = explicit or (today if versions else FIRST_DAY)
    for candidate in (latest, in_force):
        if candidate and candidate.sha256 == sha and candidate.effective_from == when:
            return replace(candidate, created=False)
    return when


def apply_program(
    conn: sqlite3.Connection,
    path: str | Path,
    effective: dt.date | None = None,
    today: dt.date | None = None,
) -> ProgramVersion:
    """Validate a program file and store it as a new version.

    Effective date: `effective`, else the YAML's effective_from; with neither,
    the first version is in force from the start of history (0001-01-01) and
    a later one from `today`. Applying the same file again (same sha256 as the
    latest version or the one in force, and the same effective date, or no
    date given) changes nothing and returns that version with created=False.
    """
    text, raw = read_program_file(path)
    program = parse_program(text, source=str(path))
    sha = _sha256(raw)
    today = today or dt.date.today()
    with db.transaction(conn):
        kept = _kept_or_start(conn, program, text, str(path), sha, effective, today)
        if isinstance(kept, ProgramVersion):
            return kept
        when = kept
        applied_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        cur = conn.execute(
            "INSERT INTO program_versions "
            "(name, effective_from, applied_at, source_file, sha256, yaml) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (program.program, when.isoformat(), applied_at, str(path), sha, text),
        )
        _PARSED.setdefault(sha, program)
        return ProgramVersion(
            version=int(cur.lastrowid or 0),
            name=program.program,
            effective_from=when,
            sha256=sha,
            applied_at=applied_at,
            source_file=str(path),
            yaml=text,
            program=program,
        )
