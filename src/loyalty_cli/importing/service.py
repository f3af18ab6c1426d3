"""import_files / list_imports / list_rejects / undo_import: the import service.

One transaction per file: the `imports` row, the data rows and the rejects
are committed together or not at all (`--dry-run` rolls back on purpose,
`--strict` on the first rejected row).
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loyalty_cli import db, ledger, workers
from loyalty_cli.errors import (
    ConflictError,
    FileReadError,
    InputFileError,
    LoyaltyError,
    NotFoundError,
    UsageError,
    printable,
)
from loyalty_cli.importing.dialect import Dialect, DialectOverrides, resolve
from loyalty_cli.importing.kinds import ImportContext, KindHandler, get_kind
from loyalty_cli.importing.parsing import MAX_FIELD, CellFormat, Cells, RowRejected
from loyalty_cli.importing.reader import CsvReader, RawRow, resolve_header

MAX_RAW = 2 * MAX_FIELD  # raw text kept for a rejected row
REJECT_BATCH = 500
SAMPLE = 20  # rejected rows kept on the result (dry-run shows them)
IMPORT_CACHE_KIB = 32 * 1024  # SQLite page cache during an import (see _import_file)


_STRICT_NOTE = "nothing was imported from this file"
_STRICT_NOTES = "nothing was imported from any of the"


class StrictImportError(LoyaltyError):
    """--strict and a row was rejected: the file was not imported."""

    exit_code = 1


@dataclass
class ImportResult:
    import_id: int | None  # the skipped file's earlier import; None for a dry run
    file: str
    kind: str
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped_file: bool = False
    dry_run: bool = False
    sample: list[dict[str, Any]] = field(default_factory=list)  # first rejected rows
    # Said on stderr, not in the JSON: what the file lacks that the dialect expects.
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "file": self.file,
            "rows": self.rows,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "skipped_file": self.skipped_file,
        }


@dataclass
class UndoResult:
    import_id: int
    kind: str
    file: str
    rows: int
    undone_on: dt.date
    # Later imports that counted rows as duplicates: (import_id, file).
    sharing: list[tuple[int, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "kind": self.kind,
            "file": self.file,
            "rows": self.rows,
            "undone_on": self.undone_on.isoformat(),
        }

    def sharing_note(self) -> str | None:
        """What to do when later files held some of the undone rows too."""
        if not self.sharing:
            return None
        files = ", ".join(f"{file} (import {i})" for i, file in self.sharing)
        return (
            f"{files} counted rows as duplicates of earlier imports; those of import "
            f"{self.import_id} are undone too: import the file again to bring them back "
            "(it is no longer skipped as imported)"
        )


class _DryRun(Exception):
    """Raised at the end of a dry run so the transaction rolls back."""


def import_files(
    conn: sqlite3.Connection,
    kind: str,
    paths: list[Path],
    *,
    dry_run: bool = False,
    strict: bool = False,
    overrides: DialectOverrides | None = None,
    progress: bool = False,
    today: dt.date | None = None,
    on_result: Callable[[ImportResult], None] | None = None,
) -> list[ImportResult]:
    """Import each file in its own transaction; results in the order given.

    Every file is opened and its header checked before anything is written, so
    a missing file, a wrong encoding or a missing column imports nothing. A
    failure inside a file (an undecodable byte at line 5,000) rolls that file
    back; the files before it stay imported, and `on_result` has been called
    with each of their results as it finished. With `strict` the files are one
    transaction: a rejected row in any of them imports none (exit 1 means
    nothing changed). Raises InputFileError or StrictImportError.
    """
    handler = get_kind(kind)
    handler.check_shop(conn)
    today = today or dt.date.today()
    dialect = resolve(conn, overrides, today)
    unknown = sorted(set((overrides.columns if overrides else None) or {}) - set(handler.columns))
    if unknown:
        raise UsageError(
            f"--columns: '{unknown[0]}' is not a column of {kind}; they are "
            + ", ".join(handler.columns)
        )
    paths = [Path(p) for p in paths]
    dialects = {path: dialect_for(handler, path, dialect) for path in paths}
    results: list[ImportResult] = []
    if strict and not dry_run and len(paths) > 1:
        try:
            with db.transaction(conn):
                for path in paths:
                    results.append(
                        _import_file(
                            conn, handler, path, dialects[path], False, True, progress, today
                        )
                    )
        except StrictImportError as exc:
            exc.message = exc.message.replace(_STRICT_NOTE, f"{_STRICT_NOTES} {len(paths)} files")
            raise
        for result in results:
            if on_result is not None:
                on_result(result)
        return results
    if dry_run and len(paths) > 1:
        return _dry_run_together(conn, handler, paths, dialects, strict, progress, today, on_result)
    for path in paths:
        results.append(
            _import_file(conn, handler, path, dialects[path], dry_run, strict, progress, today)
        )
        if on_result is not None:
            on_result(results[-1])
    return results


def _dry_run_together(
    conn: sqlite3.Connection,
    handler: type[KindHandler],
    paths: list[Path],
    dialects: dict[Path, Dialect],
    strict: bool,
    progress: bool,
    today: dt.date,
    on_result: Callable[[ImportResult], None] | None,
) -> list[ImportResult]:
    """A dry run of several files: each sees the rows of the files before it, as
    in the real import (a row the first file brings is a duplicate in the second,
    a copy of the first is skipped), then all of it is rolled back."""
    results: list[ImportResult] = []
    newest = conn.execute("SELECT COALESCE(MAX(import_id), 0) FROM imports").fetchone()[0]
    try:
        with db.transaction(conn):
            for path in paths:
                try:
                    result = _import_file(
                        conn, handler, path, dialects[path], True, strict, progress, today
                    )
                except StrictImportError as exc:  # as the real import would say it
                    exc.message = exc.message.replace(
                        _STRICT_NOTE, f"{_STRICT_NOTES} {len(paths)} files"
                    )
                    raise
                if result.import_id is not None and result.import_id > newest:
                    result.import_id = None  # skipped as a copy of a file of this dry run
                results.append(result)
                if on_result is not None and not strict:
                    on_result(result)
            if on_result is not None and strict:  # reported once all passed, as for real
                for result in results:
                    on_result(result)
            raise _DryRun
    except _DryRun:
        pass
    return results


def dialect_for(handler: type[KindHandler], path: Path, dialect: Dialect) -> Dialect:
    """The dialect a file is read in: the shop's (the program's `csv:` section), or
    the standard one when the shop's cannot read its header and the standard one
    can: a customers or events file from elsewhere than the till, a standard export.
    Never when both split the header alike while the shop's decimal is ',' (a till
    file saved in another encoding would have its amounts misread). Raises what the
    header check of the shop's dialect raises when the standard one does not fit."""
    try:
        _check_header(handler, path, dialect)
    except InputFileError:
        standard = dialect.standard
        if standard is None:
            raise
        try:
            delimiter = _check_header(handler, path, standard)
        except LoyaltyError:
            pass
        else:
            if dialect.decimal == "." or delimiter != dialect.delimiter:
                return standard
        raise
    return dialect


def _check_header(handler: type[KindHandler], path: Path, dialect: Dialect) -> str:
    """Open the file and resolve its header as the import will; raise what it would.
    Returns the delimiter it was read with (sniffed when the dialect names none)."""
    if not path.is_file():
        if path.exists():  # a device or a pipe (`<(...)`): read twice, so a file is needed
            raise InputFileError(
                "not a regular file (a device, pipe or socket); save it to a file first",
                file=printable(path),
            )
        raise InputFileError("no such file", file=printable(path))
    with CsvReader(path, dialect) as reader:
        header = reader.read_header()
        resolve_header(
            header,
            handler.columns,
            handler.required,
            dialect.columns,
            printable(path),
            reader.header_line,
        )
        return reader.delimiter


def already_imported(conn: sqlite3.Connection, kind: str, path: Path) -> int | None:
    """The import (not undone) of a file of this kind with this file's content."""
    return _import_of(conn, kind, _sha256(path))


def _import_of(conn: sqlite3.Connection, kind: str, digest: str) -> int | None:
    """The import that makes a file of this content "already imported". One that
    counted rows as duplicates of an earlier import undone since does not: those
    rows are undone with it, and reading the file again brings them back (the
    rest are duplicates again). Only for kinds whose undo marks rows undone: a
    customers file read again would put back values changed since."""
    stale = (
        "AND NOT (p.duplicates > 0 AND EXISTS (SELECT 1 FROM imports u WHERE u.kind = "
        "p.kind AND u.status = 'undone' AND u.import_id < p.import_id "
        "AND u.undone_after >= p.import_id)) "
        if get_kind(kind).has_undone
        else ""
    )
    row = conn.execute(
        "SELECT p.import_id FROM imports p WHERE p.sha256 = ? AND p.kind = ? "
        f"AND p.status != 'undone' {stale}ORDER BY p.import_id LIMIT 1",
        (digest, kind),
    ).fetchone()
    return int(row[0]) if row is not None else None


def _sharing_imports(conn: sqlite3.Connection, import_id: int, kind: str) -> list[tuple[int, str]]:
    """Later imports of the kind that counted rows as duplicates: some may have been
    rows of `import_id`, undone with it."""
    return [
        (int(i), str(f))
        for i, f in conn.execute(
            "SELECT import_id, file FROM imports WHERE kind = ? AND import_id > ? "
            "AND status != 'undone' AND duplicates > 0 ORDER BY import_id",
            (kind, import_id),
        )
    ]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:  # a failing disk, a share gone: name the file
        raise FileReadError(f"cannot read: {exc.strerror}", file=printable(path)) from None
    return digest.hexdigest()


def _fingerprint(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _import_file(
    conn: sqlite3.Connection,
    handler_cls: type[KindHandler],
    path: Path,
    dialect: Dialect,
    dry_run: bool,
    strict: bool,
    progress: bool,
    today: dt.date,
) -> ImportResult:
    name = printable(path)
    kind = handler_cls.name
    before = _fingerprint(path)
    digest = _sha256(path)
    result = ImportResult(None, name, kind, dry_run=dry_run)
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    # A larger page cache while importing: the rows' index entries (customer,
    # date) land all over their B-trees, and with the default 2 MB most inserts
    # of a big file re-read and spill pages. SQLite grows the cache only as
    # needed, so small files stay small; restored afterwards.
    conn.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    try:
        with db.transaction(conn):
            prev = _import_of(conn, kind, digest)
            if prev is not None:
                result.import_id = prev
                result.skipped_file = True
                return result
            import_id = conn.execute(
                "INSERT INTO imports (kind, file, sha256, started_at) VALUES (?, ?, ?, ?)",
                (kind, name, digest, _now()),
            ).lastrowid
            assert import_id is not None
            result.import_id = import_id
            handler = handler_cls(ImportContext(conn, import_id, dialect, name, today))
            handler.begin(before[0])  # the size, as stat'ed before reading
            with _collector_paused():
                _read_rows(conn, handler, path, dialect, result, strict, progress)
            handler.finish()
            if _fingerprint(path) != before:
                # The till is still writing it (or replaced it): what was read may end
                # in a half-written line, and the hash names neither version.
                raise ConflictError(
                    "changed while it was being imported (is the till still writing it?); "
                    "nothing of it was imported: import it once it is complete",
                    file=name,
                )
            conn.execute(
                "UPDATE imports SET finished_at = ?, rows = ?, inserted = ?, duplicates = ?, "
                "rejected = ? WHERE import_id = ?",
                (_now(), result.rows, result.inserted, result.duplicates, result.rejected,
                 import_id),
            )  # fmt: skip
            if dry_run:
                raise _DryRun
    except _DryRun:
        result.import_id = None
    finally:
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")
    return result


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the rows stream through: they
    are millions of short-lived tuples and lists in no cycle, freed as they go,
    and the collections they set off were a tenth of a 1M-line import."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_rows(
    conn: sqlite3.Connection,
    handler: KindHandler,
    path: Path,
    dialect: Dialect,
    result: ImportResult,
    strict: bool,
    progress: bool,
) -> None:
    name = result.file
    fmt = CellFormat(dialect.decimal, dialect.date_format, dialect.currency)
    rejects: list[tuple[Any, ...]] = []

    def flush_rejects() -> None:
        conn.executemany(
            "INSERT INTO rejects (import_id, file, line, field, reason, raw) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rejects,
        )
        rejects.clear()

    def reject(rej: RowRejected, line: int, raw: str) -> None:
        result.rejected += 1
        if strict:
            raise StrictImportError(
                f"{rej.reason} (--strict: {_STRICT_NOTE})",
                file=name,
                line=line,
                field=rej.field,
            ) from None
        rejects.append((result.import_id, name, line, rej.field, rej.reason, raw))
        if len(result.sample) < SAMPLE:
            result.sample.append(_reject_json(rejects[-1]))
        if len(rejects) >= REJECT_BATCH:
            flush_rejects()

    with CsvReader(path, dialect) as reader:
        header = reader.read_header()
        index = resolve_header(
            header, handler.columns, handler.required, dialect.columns, name, reader.header_line
        )
        handler.use_columns(index)
        result.notes += _unmapped(dialect, handler, index)
        chunks = _parsed_chunks(reader, handler, header, index, fmt)
        # The reader is forked before the progress bar starts its thread.
        with (
            _reader_process(chunks, handler, reader.size, name) as stream,
            _progress(progress, reader) as tick,
        ):
            next_tick = 1000
            for chunk, failure, bytes_read in stream:
                handler.prepare([p for _, _, p in chunk if not isinstance(p, RowRejected)])
                for line, raw, parsed in chunk:
                    result.rows += 1
                    if isinstance(parsed, RowRejected):
                        reject(parsed, line, raw)
                    else:
                        try:
                            if handler.accept(parsed, line):
                                result.inserted += 1
                            else:
                                result.duplicates += 1
                        except RowRejected as rej:
                            reject(rej, line, raw)
                if result.rows >= next_tick:
                    tick(bytes_read)
                    next_tick = result.rows + 1000
                if failure is not None:
                    raise failure
        handler.flush()
        flush_rejects()


def _unmapped(dialect: Dialect, handler: KindHandler, index: dict[str, int]) -> list[str]:
    """The optional columns the dialect maps (csv.columns, --columns) that the file
    has not: every row leaves them empty, which a wrong encoding (a garbled
    `Myymälä`) or a renamed column would otherwise do without a word."""
    return [
        f"column '{name}' (mapped to {std}) is not in the file: {std} is empty on every row"
        for std, name in dialect.columns.items()
        if std in handler.columns and std not in index
    ]


# (physical line, the row's text as a rejected row keeps it, its record or
# RowRejected) per row, in file order
Chunk = list[tuple[int, str, Any]]


def _parsed_chunks(
    reader: CsvReader,
    handler: KindHandler,
    header: list[str],
    index: dict[str, int],
    fmt: CellFormat,
) -> Iterator[tuple[Chunk, LoyaltyError | None, int]]:
    """The file's rows parsed, `handler.chunk_rows` at a time, so that the kind can
    look up the keys of a whole chunk at once (`prepare`) before accepting its rows
    in file order, exactly as one at a time. Each chunk comes with the failure that
    ended the file there (an undecodable line: the rows before it come first) and
    the bytes read so far. Parsing is lazy: a kind whose `parse` reads the database
    (chunk_rows 1) parses a row only after the rows before it are accepted."""
    names = {i: std for std, i in index.items()}
    width = len(header)
    chunk_rows = max(1, handler.chunk_rows)
    fast = handler.parse_fields
    rows = reader.rows()
    done = False
    while not done:
        chunk: Chunk = []
        failure: LoyaltyError | None = None
        try:
            for raw in rows:
                fields = raw.fields
                parsed: Any = None
                if (
                    fields is not None
                    and len(fields) == width
                    and len(raw.raw) <= MAX_FIELD
                    and "\n" not in raw.raw  # a row over several lines: checked by _cells
                ):
                    parsed = fast(fields)
                if parsed is None:
                    try:
                        parsed = handler.parse(_cells(raw, width, index, names, header, fmt))
                    except RowRejected as rej:
                        parsed = rej
                chunk.append((raw.line, raw.raw[:MAX_RAW], parsed))
                if len(chunk) >= chunk_rows:
                    break
            else:
                done = True
        except LoyaltyError as exc:  # unreadable file: after the rows before it
            failure, done = exc, True
        yield chunk, failure, reader.bytes_read


def _cells(
    raw: RawRow,
    width: int,
    index: dict[str, int],
    names: dict[int, str],
    header: list[str],
    fmt: CellFormat,
) -> Cells:
    """Row-shape checks every kind shares, then the typed view of the row."""
    if raw.fields is None:
        raise RowRejected(None, raw.error or "unreadable row")
    lines = raw.raw.count("\n")
    # Closed: the text ends in an odd run of quotes (inside a quoted field they come
    # in pairs), maybe followed by spaces or a tab the csv module keeps in the field.
    text = raw.raw.rstrip(" \t")
    closed = (len(text) - len(text.rstrip('"'))) % 2 == 1
    if lines and raw.raw.count('"') % 2 and "\n" in raw.fields[-1] and not closed:
        # The csv module reads an unclosed quote to the end of the file: the last
        # field holds the rest of it (an odd count alone may be a 5" bag beside
        # a closed multi-line field). Also when that field is the header's last
        # column, so that the row has as many fields as the header: the rows after
        # it would be lost inside its text.
        raise RowRejected(
            None,
            f"a quote opened on line {raw.line} is never closed: lines {raw.line}-"
            f"{raw.line + lines} were read as one row of {len(raw.fields)} fields",
        )
    if len(raw.fields) != width:
        raise RowRejected(None, f"the row has {len(raw.fields)} fields, the header has {width}")
    if len(raw.raw) <= MAX_FIELD:  # no cell is longer than its row's text
        return Cells(index, raw.fields, fmt)
    for i, value in enumerate(raw.fields):
        if len(value) > MAX_FIELD:
            raise RowRejected(
                names.get(i, header[i] or None), f"longer than {MAX_FIELD} characters"
            )
    return Cells(index, raw.fields, fmt)


@contextmanager
def _progress(enabled: bool, reader: CsvReader) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr by bytes read (only when asked: a terminal);
    yields `tick(bytes_read)`."""
    if not enabled or reader.size == 0:
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    ) as bar:
        task = bar.add_task(printable(reader.path.name), total=reader.size)
        yield lambda done: bar.update(task, completed=done)
        bar.update(task, completed=reader.size)


# A file at least this large is read and parsed by a forked process while this one
# checks keys and writes (when the kind's parse does not read the database).
_READER_PROCESS_MIN_BYTES = 1 << 20
_PIPE_BYTES = 1 << 20  # a chunk of parsed rows is about 0.6 MB pickled

ChunkStream = Iterator[tuple[Chunk, LoyaltyError | None, int]]


@contextmanager
def _reader_process(
    chunks: ChunkStream, handler: KindHandler, size: int, name: str
) -> Iterator[ChunkStream]:
    """`chunks`, produced by a forked process for a large file of a kind that
    parses without the database (`chunk_rows` > 1) on a machine with two CPUs or
    more; else `chunks` itself. The reader gets the same handler and dialect (they
    were set up before the fork) and only reads the file; the rows' order, their
    records, rejections and the failure that ends a file are the same. It is killed
    when the import stops early (--strict, an error)."""
    if size < _READER_PROCESS_MIN_BYTES or handler.chunk_rows <= 1 or workers.cpus() < 2:
        yield chunks
        return
    receive, send = workers.pipe(_PIPE_BYTES)
    reader = workers.start(_read_aside, chunks, send, receive)
    send.close()

    def received() -> ChunkStream:
        while True:
            try:
                message = receive.recv()
            except EOFError:
                raise LoyaltyError(
                    "the process reading the file ended unexpectedly; nothing was imported from it",
                    file=name,
                ) from None
            if message[0] == "error":
                raise message[1]
            if message[0] == "end":
                return
            yield message[1]

    try:
        yield received()
    finally:
        # Done (it has nothing left to do but exit) or given up: not waited for.
        reader.kill()
        receive.close()
        reader.join()


def _read_aside(chunks: ChunkStream, send: Any, their_end: Any) -> None:
    """The forked reader: send each chunk, then "end"; a failure of its own is
    sent for the importer to raise."""
    their_end.close()  # so that the importer closing its end reads as EOF here
    try:
        for chunk in chunks:
            send.send(("chunk", chunk))
        send.send(("end",))
    except (EOFError, BrokenPipeError):
        return  # the importer went away (killed or failed): nothing to answer
    except BaseException as exc:  # noqa: BLE001 - handed to the importer, which raises it
        workers.send_error(send, exc)


def _reject_json(row: tuple[Any, ...] | sqlite3.Row) -> dict[str, Any]:
    keys = ("import_id", "file", "line", "field", "reason", "raw")
    return dict(zip(keys, tuple(row), strict=True))


def list_imports(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every import so far, oldest first."""
    rows = conn.execute(
        "SELECT import_id, kind, file, status, started_at, finished_at, rows, inserted, "
        "duplicates, rejected, undone_on FROM imports ORDER BY import_id"
    ).fetchall()
    return [dict(row) for row in rows]


def list_rejects(conn: sqlite3.Connection, import_id: int | None = None) -> list[dict[str, Any]]:
    """Rejected rows (of one import, or all), in file and line order."""
    if import_id is not None:
        _get_import(conn, import_id)
        cursor = conn.execute(
            "SELECT import_id, file, line, field, reason, raw FROM rejects "
            "WHERE import_id = ? ORDER BY reject_id",
            (import_id,),
        )
    else:
        cursor = conn.execute(
            "SELECT import_id, file, line, field, reason, raw FROM rejects "
            "ORDER BY import_id, reject_id"
        )
    return [_reject_json(row) for row in cursor]


def _get_import(conn: sqlite3.Connection, import_id: int) -> sqlite3.Row:
    row = conn.execute(
        "SELECT import_id, kind, file, status, undone_on FROM imports WHERE import_id = ?",
        (import_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"unknown import {import_id}; see `loyalty import list`")
    return row


def undo_import(conn: sqlite3.Connection, import_id: int, on: dt.date) -> UndoResult:
    """Mark an import's rows undone and post `reversal` entries dated `on` for
    the points they earned; one transaction. Undoing twice is a ConflictError."""
    with db.transaction(conn):
        row = _get_import(conn, import_id)
        if row["status"] == "undone":
            raise ConflictError(f"import {import_id} was already undone on {row['undone_on']}")
        handler = get_kind(row["kind"])
        _check_undo_date(conn, handler, import_id, on)
        count = handler.undo(conn, import_id, on, ledger.undone_note(import_id))
        conn.execute(
            "UPDATE imports SET status = 'undone', undone_on = ?, "
            "undone_after = (SELECT MAX(import_id) FROM imports) WHERE import_id = ?",
            (on.isoformat(), import_id),
        )
        sharing = _sharing_imports(conn, import_id, row["kind"]) if handler.has_undone else []
    return UndoResult(import_id, row["kind"], row["file"], count, on, sharing)


def _check_undo_date(
    conn: sqlite3.Connection, handler: type[KindHandler], import_id: int, on: dt.date
) -> None:
    """Nothing is back-dated: the reversal may not be dated before the points it
    reverses were posted (as `redemption cancel` may not precede its redemption)."""
    last = handler.last_posted(conn, import_id)
    if last is not None and on.isoformat() < last:
        raise ConflictError(
            f"import {import_id} has points posted up to {last}; "
            f"it cannot be undone on an earlier date ({on.isoformat()})"
        )
