"""Streaming CSV rows with their physical line numbers.

The file is read in binary, one physical line at a time, decoded
incrementally and handed to the `csv` module; so memory stays flat in the file
size, a decoding error names the line it is on, and a row's line number is
the physical line it starts on (the header is line 1, a quoted field spanning
lines counts every line).
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from loyalty_cli.errors import InputFileError
from loyalty_cli.importing.dialect import DELIMITERS, Dialect
from loyalty_cli.importing.parsing import MAX_FIELD


@dataclass(frozen=True)
class RawRow:
    """One data record: `fields` is None when the csv module could not parse it."""

    line: int
    fields: list[str] | None
    raw: str
    error: str | None = None


class CsvReader:
    """Context manager: `with CsvReader(path, dialect) as r: r.header; r.rows()`."""

    def __init__(self, path: Path, dialect: Dialect) -> None:
        self.path = path
        self.name = str(path)
        self.dialect = dialect
        self.delimiter = dialect.delimiter or ","
        self.header: list[str] = []
        self.size = 0
        self._fh: BinaryIO | None = None
        self._buf: list[str] = []  # physical lines of the record being read
        self._lines_out = 0
        self._rows: Iterator[RawRow] | None = None

    def __enter__(self) -> CsvReader:
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in __exit__
            self.size = os.fstat(self._fh.fileno()).st_size
        except OSError as exc:
            raise InputFileError(f"cannot open: {exc.strerror}", file=self.name) from None
        self._rows = self._records()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()

    @property
    def bytes_read(self) -> int:
        return self._fh.tell() if self._fh is not None and not self._fh.closed else 0

    def _lines(self) -> Iterator[str]:
        assert self._fh is not None
        decoder = codecs.getincrementaldecoder(self.dialect.encoding)(errors="strict")
        pending = ""
        chunks = iter(self._fh)  # binary lines, split at b"\n"
        while True:
            chunk = next(chunks, None)
            try:
                text = decoder.decode(b"" if chunk is None else chunk, final=chunk is None)
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    f"cannot be read as {self.dialect.encoding} "
                    f"(byte {exc.object[exc.start : exc.start + 1]!r}); "
                    "give the right encoding, e.g. --encoding latin-1",
                    file=self.name,
                    line=self._lines_out + 1,
                ) from None
            pending += text
            while True:
                cut = pending.find("\n")
                if cut < 0:
                    break
                self._emit(pending[: cut + 1])
                yield pending[: cut + 1]
                pending = pending[cut + 1 :]
            if chunk is None:
                break
        if pending:
            self._emit(pending)
            yield pending

    def _emit(self, line: str) -> None:
        self._lines_out += 1
        self._buf.append(line)

    def _records(self) -> Iterator[RawRow]:
        lines = self._lines()
        first = next(lines, None)
        while first is not None and not first.strip():
            first = next(lines, None)
        if first is None:
            raise InputFileError("the file is empty; expected a header line", file=self.name)
        if self.dialect.delimiter is None:
            self.delimiter = sniff_delimiter(first)

        def chained() -> Iterator[str]:
            yield first
            yield from lines

        reader = csv.reader(chained(), delimiter=self.delimiter, quotechar='"', doublequote=True)
        header_start = self._lines_out  # blank lines before the header are skipped
        self._buf = [first]
        prev = header_start - 1
        header_done = False
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, prev = prev + 1, header_start - 1 + reader.line_num
                raw, self._buf = "".join(self._buf), []
                if not header_done:
                    raise InputFileError(f"unreadable header: {exc}", file=self.name) from None
                yield RawRow(start, None, raw.rstrip("\r\n"), _csv_reason(exc))
                continue
            start, prev = prev + 1, header_start - 1 + reader.line_num
            raw, self._buf = "".join(self._buf), []
            if not header_done:
                header_done = True
                if fields:
                    fields[0] = fields[0].lstrip("\ufeff")
                self.header = [f.strip() for f in fields]
                self.header_line = start
                yield RawRow(start, fields, raw)  # the header itself; rows() drops it
                continue
            if not any(f.strip() for f in fields):
                continue  # blank line (or only delimiters): not a row
            yield RawRow(start, fields, raw.rstrip("\r\n"))

    def read_header(self) -> list[str]:
        assert self._rows is not None
        next(self._rows)
        if not any(self.header):
            raise InputFileError("the file has no header line", file=self.name, line=1)
        return self.header

    def rows(self) -> Iterator[RawRow]:
        assert self._rows is not None
        return self._rows


def sniff_delimiter(line: str) -> str:
    """The candidate that splits the header line into the most fields (ties: ',')."""
    best, best_count = ",", 1
    for candidate in DELIMITERS:
        count = len(next(csv.reader([line], delimiter=candidate)))
        if count > best_count:
            best, best_count = candidate, count
    return best


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a field is longer than {MAX_FIELD} characters"
    return f"unreadable CSV: {text}"


def resolve_header(
    header: list[str],
    columns: tuple[str, ...],
    required: tuple[str, ...],
    mapping: dict[str, str],
    file: str,
) -> dict[str, int]:
    """Standard column name -> index in the row. A mapped name is looked up
    first, then the standard name; both exactly, then case-insensitively."""
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if not name:
            continue
        if name in seen:
            raise InputFileError(f"column '{name}' appears twice in the header", file=file, line=1)
        seen[name] = i
    folded = {name.casefold(): i for name, i in seen.items()}

    def find(name: str) -> int | None:
        if name in seen:
            return seen[name]
        return folded.get(name.casefold())

    index: dict[str, int] = {}
    for std in columns:
        candidates = [mapping[std], std] if std in mapping else [std]
        for cand in candidates:
            found = find(cand)
            if found is not None:
                index[std] = found
                break
    for std in required:
        if std not in index:
            has = ", ".join(f"'{h}'" for h in header if h) or "no named columns"
            mapped = f" (mapped to '{mapping[std]}')" if std in mapping else ""
            raise InputFileError(
                f"column '{std}'{mapped} not found; the file has {has}; "
                f"map it with csv.columns.{std} or --columns {std}=...",
                file=file,
                line=1,
            )
    return index
