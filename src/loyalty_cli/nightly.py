"""`loyalty nightly`: import every new file in an inbox, then run the engine.

What cron calls once a night (docs/cron.md). The order of work:

1. take the nightly lock (lock.hold_lock; a second nightly waits, then fails);
2. list INBOX/*.csv (top level, not hidden), grouped by kind from the name
   prefix and in name order inside a kind: `customers-*` first (events and
   referrals name customers that must exist), then purchases (any other
   name), then `events-*` (an event for a customer from tonight's customers
   file is accepted), then `redemptions-*` (till redemptions spend points
   posted by earlier nights' runs);
3. each file: one `import_files` call = one transaction; then its rejects are
   written to INBOX/done/<stem>.rejects.csv and the file is moved to
   INBOX/done/ (a file skipped as already imported is moved too). A crash
   after the commit and before the move is harmless: next night the file is
   skipped by its content hash and moved;
4. if every file went in, `engine.run.run(conn, as_of)`.

A file that cannot be imported stops the night: it stays in the inbox, files
before it stay imported and moved (each was committed), the run is not
started, exit 1. Rows rejected inside a file do not stop anything: exit 3.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import filecmp
import os
import re
import shutil
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loyalty_cli import db
from loyalty_cli.errors import LoyaltyError, NoProgramError, UsageError, printable
from loyalty_cli.lock import hold_lock, stale_pid

# Name prefix -> kind, in processing order; any other *.csv is purchases.
# A name starting with one of these words, then `-`, `_` or `.` (customers.csv,
# customers-2026-11-22.csv, events_1.csv), is that kind; any other is purchases.
PREFIXES = ("customers", "events", "redemptions")
KIND_ORDER = ("customers", "purchases", "events", "redemptions")
DONE = "done"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class NightlyError(LoyaltyError):
    """A step of the nightly failed; what was committed before it stays."""

    exit_code = 1


@dataclass
class FileOutcome:
    name: str
    kind: str
    import_id: int | None = None
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: bool = False
    moved_to: str | None = None
    rejects_file: str | None = None
    notes: list[str] = field(default_factory=list)  # said on stderr (import's notes)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "kind": self.kind,
            "import_id": self.import_id,
            "rows": self.rows,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "skipped_file": self.skipped,
            "moved_to": self.moved_to,
            "rejects_file": self.rejects_file,
        }

    def line(self) -> str:
        if self.skipped:
            text = f"{self.name}: already imported (import {self.import_id})"
            if self.moved_to:
                text += f", moved to {DONE}/"
            if self.rejects_file:
                text += f"; {self.rejected} rejected (see {self.rejects_file})"
            return text
        text = (
            f"{self.name}: {self.kind}, {self.inserted} inserted, {self.duplicates} duplicates, "
            f"{self.rejected} rejected"
        )
        if self.rejects_file:
            text += f" (see {self.rejects_file})"
        return text


@dataclass
class NightlyResult:
    inbox: str
    as_of: dt.date
    files: list[FileOutcome] = field(default_factory=list)
    run: dict[str, Any] | None = None
    error: NightlyError | None = None

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return 3 if self.rejected else 0

    def lines(self) -> list[str]:
        """The summary: one line per file and one for the run."""
        out = [f.line() for f in self.files]
        if not self.files and self.error is None:
            out.append(f"{self.inbox}: no new files")
        if self.run is not None:
            # The run's own date: a night stopped after the run before its till files
            # reports that run, not one as of --as-of.
            out.append(_run_line(self.run))
        return out

    def reject_lines(self) -> list[str]:
        """What --quiet still says (on stderr): the files with rejected rows."""
        return [
            f"{f.name}: {f.rejected} row{'s' if f.rejected != 1 else ''} rejected, "
            f"see {f.rejects_file or f'loyalty import rejects --import {f.import_id}'}"
            for f in self.files
            if f.rejected
        ]

    def warnings(self) -> list[str]:
        """Said on stderr, with --quiet too: what a file lacked (see ImportResult)."""
        return [f"Warning: {f.name}: {note}" for f in self.files for note in f.notes]

    def as_json(self) -> dict[str, Any]:
        return {
            "inbox": self.inbox,
            "as_of": self.as_of.isoformat(),
            "files": [f.as_json() for f in self.files],
            "rejected": self.rejected,
            "run": self.run,
            "error": str(self.error) if self.error is not None else None,
            "exit_code": self.exit_code,
        }


def _run_line(run: dict[str, Any]) -> str:
    """`run as of 2026-11-23: 12 customers, 30 receipts, 41 entries, 0 vouchers_issued`."""
    parts = []
    for key in ("customers", "receipts", "entries", "vouchers_issued"):
        value = run.get(key)
        if isinstance(value, dict):
            value = sum(value.values())
        if isinstance(value, int):
            parts.append(f"{value} {key}")
    if run.get("before_program"):
        parts.append(f"{run['before_program']} receipts before the program's first version")
    return f"run as of {run['as_of']}" + (f": {', '.join(parts)}" if parts else "")


def kind_of(path: Path) -> str:
    """The import kind a file's name asks for (prefix, else purchases)."""
    lower = path.name.lower()
    for kind in PREFIXES:
        if lower.startswith(kind) and lower[len(kind) : len(kind) + 1] in ("-", "_", "."):
            return kind
    return "purchases"


def inbox_files(inbox: Path) -> list[tuple[str, Path]]:
    """(kind, path) of the inbox's *.csv files in processing order. Hidden files
    (`.day.csv`, a copy still being written) and lock files (`~$day.csv`, Excel's
    while someone has the file open) are left alone."""
    found = [
        p
        for p in inbox.iterdir()
        # A link to a file that is gone (a share not mounted) is listed, so that the
        # night says so instead of passing it over in silence.
        if (p.is_file() or (p.is_symlink() and not p.exists()))
        and not _alias(p, inbox)
        and p.suffix.lower() == ".csv"
        and not p.name.startswith((".", "~"))
        and not p.name.endswith(".rejects.csv")
    ]
    return sorted(
        ((kind_of(p), p) for p in found), key=lambda kp: (KIND_ORDER.index(kp[0]), kp[1].name)
    )


def _alias(path: Path, inbox: Path) -> bool:
    """A link to another file of the inbox: that file is the one imported (the link
    would name it twice, and dangle once it is moved)."""
    if not path.is_symlink():
        return False
    target = Path(os.path.realpath(path))
    return target.parent == Path(os.path.realpath(inbox)) and target.name != path.name


def check_inbox(inbox: Path) -> None:
    """UsageError unless `inbox` is a directory whose `done` is not a file."""
    if not inbox.is_dir():
        raise UsageError("the inbox is not a directory", file=printable(inbox))
    if (inbox / DONE).exists() and not (inbox / DONE).is_dir():
        raise UsageError(
            f"{DONE} in the inbox is a file, not a folder; move it away (imported files go "
            f"to {inbox / DONE}/)",
            file=printable(inbox / DONE),
        )


def nightly(
    conn_or_path: sqlite3.Connection | str | os.PathLike[str],
    inbox: Path,
    as_of: dt.date | None = None,
    wait: float = 600.0,
    quiet: bool = False,
    *,
    command: str | None = None,
) -> NightlyResult:
    """Import every new file in `inbox`, move it to inbox/done/, then run as of
    `as_of` (default today). Never raises for a failed step: the result's
    `error` says what failed (exit 1); `exit_code` is 0, 3 (rows rejected) or 1.
    Raises UsageError when the inbox is missing and LockedError when another
    nightly holds the lock for longer than `wait` seconds.
    """
    inbox = Path(inbox)
    as_of = as_of or dt.date.today()
    check_inbox(inbox)
    own = not isinstance(conn_or_path, sqlite3.Connection)
    conn = db.connect(conn_or_path) if own else conn_or_path  # type: ignore[arg-type]
    try:
        with (
            _sigterm_as_exit(),
            hold_lock(conn, command or f"loyalty nightly --inbox {inbox}", wait=wait),
        ):
            return _nightly(conn, inbox, as_of, progress=not quiet and sys.stderr.isatty())
    finally:
        if own:
            conn.close()


def _nightly(
    conn: sqlite3.Connection, inbox: Path, as_of: dt.date, progress: bool
) -> NightlyResult:
    from loyalty_cli.importing import import_files

    result = NightlyResult(printable(inbox), as_of)
    done = inbox / DONE
    if conn.execute("SELECT 1 FROM program_versions LIMIT 1").fetchone() is None:
        # Before anything is imported or moved: a mistyped --db (a new, empty file)
        # must not swallow the inbox into a database nobody reads. (A program that
        # starts later is no reason to stop: the receipts are kept, and those dated
        # before it earn nothing, as `run` says.)
        result.error = NightlyError(
            f"{NoProgramError()}: nothing was imported, the inbox is untouched"
        )
        return result
    early_run: dict[str, Any] | None = None
    if done.is_dir():
        _remove_stale_temps(done)  # what a nightly killed while archiving left there
    files = inbox_files(inbox)
    till_days = {p: _till_day(conn, p, as_of) for k, p in files if k == "redemptions"}
    # Till files by their day (then name): a later day's run would expire points an
    # earlier day's redemptions spent, whatever the files are called. Files without
    # a day (imported before, unreadable) last: one that fails stops no other.
    files.sort(
        key=lambda kp: (
            KIND_ORDER.index(kp[0]),
            till_days.get(kp[1]) is None,
            till_days.get(kp[1]) or as_of,
        )
    )
    for kind, path in files:
        day = till_days.get(path)
        if day is not None:
            # Till redemptions spend points: the purchases up to the file's day (this
            # night's, a missed night's, one imported by hand) are posted first, not
            # later ones: a lot expiring the morning after still paid for that day's
            # redemptions. Never before the last run: all up to it is posted.
            ran = db.get_meta(conn, "run.as_of")
            if ran is not None:
                day = min(max(day, dt.date.fromisoformat(ran)), as_of)
            try:
                early_run = _merged(early_run, _run_engine(conn, day, progress))
            except (LoyaltyError, ImportError, sqlite3.Error) as exc:
                result.error = _till_run_failed(exc, day, path, len(result.files))
                result.run = _shown(early_run)
                return result
        try:
            if not path.exists():
                raise NightlyError(
                    f"a link to {printable(os.readlink(path))}, which does not exist (is the "
                    "share it points to mounted?)",
                    file=printable(path),
                )
            (imported,) = import_files(conn, kind, [path], progress=progress, today=as_of)
        except (LoyaltyError, sqlite3.Error) as exc:
            result.error = _stopped(exc, path, result, early_run)
            result.run = _shown(early_run)
            return result
        outcome = FileOutcome(
            printable(path.name),
            kind,
            imported.import_id,
            imported.rows,
            imported.inserted,
            imported.duplicates,
            imported.rejected,
            imported.skipped_file,
            notes=imported.notes,
        )
        if outcome.skipped and outcome.import_id is not None:
            # Imported before but still here: an earlier nightly stopped between the
            # file's commit and its report (or it was imported by hand). Its rejected
            # rows are reported now, so cron hears of them.
            outcome.rejected = conn.execute(
                "SELECT rejected FROM imports WHERE import_id = ?", (outcome.import_id,)
            ).fetchone()[0]
        try:
            _archive(conn, path, outcome, done)
        except OSError as exc:
            result.files.append(outcome)
            result.run = _shown(early_run)
            result.error = NightlyError(
                f"{outcome.name} is imported (import {outcome.import_id}) but could not be moved "
                f"to {printable(done)}: {exc.strerror or exc}; nightly stopped, the run was not "
                "started (the next nightly skips the file as imported and moves it)"
            )
            return result
        result.files.append(outcome)
    try:
        result.run = _shown(_merged(early_run, _run_engine(conn, as_of, progress)))
    except (LoyaltyError, ImportError, sqlite3.Error) as exc:
        result.error = _run_failed(exc, as_of)
        result.run = _shown(early_run)
    return result


def _till_day(conn: sqlite3.Connection, path: Path, as_of: dt.date) -> dt.date | None:
    """The last date up to `as_of` of a redemptions file's rows, as the import will
    read them (`as_of` when all are later: a mistyped year 2027 must not take the
    early run past tonight's redemptions, nor 2016 hold it back, see the floor in
    `_nightly`); None for a file imported already or without a readable row (the
    import says why): no run is needed before it."""
    from loyalty_cli.importing.dialect import resolve
    from loyalty_cli.importing.parsing import RowRejected, parse_date
    from loyalty_cli.importing.reader import CsvReader, resolve_header
    from loyalty_cli.importing.redemptions import RedemptionsKind as kind
    from loyalty_cli.importing.service import already_imported, dialect_for

    if already_imported(conn, "redemptions", path) is not None:
        return None
    days: list[dt.date] = []
    try:
        dialect = dialect_for(kind, path, resolve(conn, None, as_of))  # as the import will
        with CsvReader(path, dialect) as reader:
            header = reader.read_header()
            at = resolve_header(header, kind.columns, kind.required, dialect.columns, path.name)[
                "date"
            ]
            for row in reader.rows():
                if row.fields is None or len(row.fields) <= at:
                    continue
                try:
                    days.append(parse_date(row.fields[at].strip(), dialect.date_format, "date"))
                except RowRejected:
                    continue
    except (LoyaltyError, OSError, UnicodeError):
        return None
    if not days:
        return None
    return max((d for d in days if d <= as_of), default=as_of)


def _reason(exc: BaseException) -> str:
    """What went wrong, as said after a file or run: a SQLite error (a full disk, a
    damaged file) is said to be the database's."""
    return f"database error: {exc}" if isinstance(exc, sqlite3.Error) else str(exc)


def _till_run_failed(exc: BaseException, day: dt.date, path: Path, done: int) -> NightlyError:
    """The run before a till redemptions file failed: that file and the later ones
    wait in the inbox, for the nightly (a `loyalty run` as of today first would post
    later expiries before the day's redemptions are spent)."""
    return NightlyError(
        f"run as of {day.isoformat()} before the till file {printable(path.name)} failed: "
        f"{_reason(exc)}; nightly stopped: {printable(path.name)} and the files after it "
        f"stay in the inbox, {_earlier(done)}; run the nightly again once fixed"
    )


def _run_failed(exc: BaseException, as_of: dt.date) -> NightlyError:
    return NightlyError(
        f"run as of {as_of.isoformat()} failed: {_reason(exc)}; the imported files are committed "
        "and in done/, rerun `loyalty run` or the nightly once fixed"
    )


_IDS = "_customer_ids"


def _shown(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """A summary as reported: without the customer ids _merged counts with."""
    return None if run is None else {k: v for k, v in run.items() if k != _IDS}


def _merged(early: dict[str, Any] | None, late: dict[str, Any]) -> dict[str, Any]:
    """The night's runs (before till redemptions and after) as one summary: counts
    added (customers once each, however many runs worked on them), the later run's id."""
    if early is None:
        return late
    out = dict(late)
    ids = early.get(_IDS, set()) | late.get(_IDS, set())
    out[_IDS] = ids
    for key, value in early.items():
        if key == "customers":
            out[key] = len(ids)
        elif isinstance(value, int) and key != "run_id":
            out[key] = value + late.get(key, 0)
        elif isinstance(value, dict):
            merged = dict(late.get(key, {}))
            for k, n in value.items():
                merged[k] = merged.get(k, 0) + n
            out[key] = dict(sorted(merged.items()))
    return out


def _archive(conn: sqlite3.Connection, path: Path, outcome: FileOutcome, done: Path) -> None:
    """Move an imported file into done/ with its rejects (outcome.moved_to and
    rejects_file). The rejects are named after the name the file gets there (NAME-1.csv
    when NAME.csv is there already) and written before the move: a nightly killed in
    between finds the file again, imported already, and reports them again. What such
    a kill left in done/ is taken as it is rather than archived twice: for a file
    imported already, a file of its name (NAME or NAME-k) with the same bytes (the
    move was cut short after its link or copy) and a report of the same bytes (killed
    before the move); half-written copies are removed when the night starts. A file
    imported anew (after an undo) is archived under a new name even if its bytes are
    there already."""
    done.mkdir(exist_ok=True)
    rejects = None
    if outcome.rejected and outcome.import_id is not None:
        rejects = _write_rejects(conn, outcome.import_id, done)
    try:
        earlier = _archived_as(path, done) if outcome.skipped else None
        if earlier is not None:
            name = earlier.name
        else:
            name = _free_name(done, path.name, rejects if outcome.skipped else None)
        if rejects is not None:
            target = done / f"{Path(name).stem}.rejects.csv"
            if target.is_file() and _same_bytes(rejects, target):
                outcome.rejects_file = printable(target)
            else:
                outcome.rejects_file = printable(move_no_clobber(rejects, done, target.name))
        if earlier is not None:
            os.unlink(path)
            outcome.moved_to = printable(earlier)
        else:
            outcome.moved_to = printable(move_no_clobber(path, done, name))
    finally:
        if rejects is not None and rejects.exists():
            rejects.unlink()


def _same_bytes(a: Path, b: Path) -> bool:
    return filecmp.cmp(a, b, shallow=False)


def _archived_as(path: Path, done: Path) -> Path | None:
    """The file in done/ under `path`'s name (NAME or NAME-k) with its bytes, if any."""
    ext = os.path.splitext(path.name)[1]
    stem = path.name[: len(path.name) - len(ext)]
    named = re.compile(rf"{re.escape(stem)}(-[0-9]+)?{re.escape(ext)}")
    for candidate in sorted(done.iterdir()):
        if named.fullmatch(candidate.name) and candidate.is_file() and _same_bytes(path, candidate):
            return candidate
    return None


# What _write_rejects and move_no_clobber write first, hidden: .NAME.loyalty-tmp-PID.
_TEMP_MARK = ".loyalty-tmp-"
_TEMP = re.compile(r"^\..+\.loyalty-tmp-([0-9]+)$")


def _temp_name(name: str) -> str:
    return f".{name}{_TEMP_MARK}{os.getpid()}"


def _remove_stale_temps(done: Path) -> None:
    """Half-written rejects or copies left in done/ by a nightly that was killed."""
    for leftover in done.iterdir():
        found = _TEMP.match(leftover.name)
        if found and stale_pid(found[1]):
            with suppress(OSError):
                leftover.unlink()


def _free_name(directory: Path, name: str, rejects: Path | None = None) -> str:
    """`name`, else `stem-1.ext`, ...: the first free for the file and its rejects (a
    rejects file of the same bytes as `rejects` counts as free: the same report)."""
    ext = os.path.splitext(name)[1]
    stem = name[: len(name) - len(ext)]
    for n in range(10_000):
        candidate = name if n == 0 else f"{stem}-{n}{ext}"
        report = directory / f"{candidate[: len(candidate) - len(ext)]}.rejects.csv"
        if not (directory / candidate).exists() and (
            not report.exists()
            or (rejects is not None and report.is_file() and _same_bytes(rejects, report))
        ):
            return candidate
    raise NightlyError(f"no free name for {printable(name)}", file=printable(directory))


def _stopped(
    exc: Exception, path: Path, result: NightlyResult, early_run: dict[str, Any] | None
) -> NightlyError:
    text, shown = _reason(exc), printable(path)
    if shown not in text and printable(path.name) not in text:
        text = f"{shown}: {text}"
    done = len(result.files)
    run = (
        f"the run as of {early_run['as_of']} before the till files was done, the final one "
        "was not started"
        if early_run is not None
        else "the run was not started"
    )
    return NightlyError(
        f"{text}; nightly stopped: {printable(path.name)} stays in the inbox, "
        f"{_earlier(done)}, {run}"
    )


def _earlier(done: int) -> str:
    return f"{done} earlier file{'s' if done != 1 else ''} imported and moved to {DONE}/"


def _run_engine(conn: sqlite3.Connection, as_of: dt.date, progress: bool) -> dict[str, Any]:
    """The run's summary, with the ids of its customers under `_customer_ids` (for
    _merged; dropped from what is shown)."""
    from loyalty_cli.engine.run import run

    outcome = run(conn, as_of, progress=progress)
    return {**outcome.to_dict(), _IDS: outcome.customer_ids}


def _write_rejects(conn: sqlite3.Connection, import_id: int, done: Path) -> Path:
    """A hidden file in done/ with the import's rejects: line, field, reason, raw
    (formula-safe); _archive names it."""
    from loyalty_cli.importing import list_rejects

    tmp = done / _temp_name(f"import-{import_id}.rejects.csv")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["line", "field", "reason", "raw"])
            for rej in list_rejects(conn, import_id):
                writer.writerow(
                    [rej["line"], rej["field"] or "", _safe(rej["reason"]), _safe(rej["raw"])]
                )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _safe(text: str | None) -> str:
    """A cell a spreadsheet would run as a formula gets a leading quote."""
    if not text:
        return ""
    text = text.replace("\x00", "\\x00")  # a NUL would break the next reader of the file
    return "'" + text if text.startswith(_FORMULA_START) else text


def move_no_clobber(path: Path, directory: Path, name: str | None = None) -> Path:
    """Move `path` into `directory` as `name` (default its own name); if that
    name is taken, `stem-1.ext`, `stem-2.ext`, ... Never overwrites: link()
    fails on an existing name, where rename() would silently replace it. A
    `directory` on another filesystem (a mount, a link to a share) gets a copy,
    made beside the target first, and `path` is removed once it is in place. A
    symbolic link is archived as the file it points to."""
    name = name or path.name
    try:
        return _link_into(path, directory, name)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    staged = directory / _temp_name(name)
    try:
        shutil.copyfile(path, staged)
        with open(staged, "rb") as copy:
            os.fsync(copy.fileno())  # on disk before the inbox's file is removed
        target = _link_into(staged, directory, name)
    finally:
        staged.unlink(missing_ok=True)
    os.unlink(path)
    return target


def _link_into(path: Path, directory: Path, name: str) -> Path:
    """move_no_clobber on one filesystem (OSError EXDEV when it is not, or when `path`
    is a symbolic link: link() and rename() would archive the link itself, and a
    relative one then points nowhere)."""
    if os.path.islink(path):
        raise OSError(errno.EXDEV, "a symbolic link")
    ext = ".rejects.csv" if name.endswith(".rejects.csv") else os.path.splitext(name)[1]
    stem = name[: len(name) - len(ext)]
    for n in range(10_000):
        target = directory / (name if n == 0 else f"{stem}-{n}{ext}")
        try:
            os.link(path, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise  # another filesystem: the caller copies
            # No hard links here (some network filesystems).
            if target.exists():
                continue
            os.rename(path, target)
            return target
        os.unlink(path)
        return target
    raise NightlyError(f"no free name for {printable(name)}", file=printable(directory))


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM (a cron timeout, a shutdown) into SystemExit, so the open
    transaction rolls back and the lock is released; only the main thread can
    install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        # One sentence for cron's mail; the unwinding rolls back and unlocks.
        sys.stderr.write(
            "Error: nightly stopped by SIGTERM; the step in progress was rolled back, "
            "the files in done/ are imported; run the nightly again\n"
        )
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
