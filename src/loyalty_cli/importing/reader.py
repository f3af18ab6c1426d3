"""Streaming CSV rows with their physical line numbers.

The file is read in binary blocks of about 1 MiB ending at a line end,
decoded incrementally, split into physical lines and handed to the `csv`
module; so memory stays flat in the file size, and a row's line number is the
physical line it starts on (the header is line 1, a quoted field spanning
lines counts every line). A block that cannot be decoded is decoded again one
line at a time, so the error names the line it is on and the rows before it
are imported (or rejected) first, as when reading line by line.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Generator, Iterator
from itertools import chain
from pathlib import Path
from typing import BinaryIO, NamedTuple

from loyalty_cli.errors import FileReadError, InputFileError, printable
from loyalty_cli.importing.dialect import DELIMITERS, Dialect
from loyalty_cli.importing.parsing import MAX_FIELD

BLOCK = 1 << 20  # bytes decoded at a time


class RawRow(NamedTuple):
    """One data record: `fields` is None when the csv module could not parse it."""

    line: int
    fields: list[str] | None
    raw: str
    error: str | None = None


class CsvReader:
    """Context manager: `with CsvReader(path, dialect) as r: r.header; r.rows()`."""

    def __init__(self, path: Path, dialect: Dialect) -> None:
        self.path = path
        self.name = printable(path)
        self.dialect = dialect
        self.delimiter = dialect.delimiter or ","
        self.header: list[str] = []
        self.header_line = 1  # the physical line of the header (after blank lines)
        self.size = 0
        self._fh: BinaryIO | None = None
        self._lines_out = 0  # physical lines decoded so far
        # (first line number, lines) of the blocks the record being read may span
        self._window: list[tuple[int, list[str]]] = []
        self._next_start = 1  # first physical line of the record being read
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

    def _blocks(self) -> Iterator[list[str]]:
        """The physical lines ("\n" kept), decoded about a BLOCK of bytes at a
        time (one decode and one C split per block, not per line)."""
        assert self._fh is not None
        decoder = codecs.getincrementaldecoder(self.dialect.encoding)(errors="strict")
        pending = ""
        while True:
            try:
                data = self._fh.read(BLOCK)
                if data and not data.endswith(b"\n"):
                    data += self._fh.readline()  # blocks end at a line end
            except OSError as exc:  # a failing disk, a share gone: name the file
                raise FileReadError(f"cannot read: {exc.strerror}", file=self.name) from None
            final = not data
            state = decoder.getstate()
            try:
                text = decoder.decode(data, final=final)
            except UnicodeError:  # a bad byte, or no BOM where utf-16 needs one
                # Again line by line, as the error must name its line and the
                # lines before it are rows to import first.
                decoder.setstate(state)
                pending = yield from self._by_line(decoder, data, pending, final)
                if final:
                    break
                continue
            lines = io.StringIO(pending + text, newline="\n").readlines()
            pending = ""
            if lines and not final and not lines[-1].endswith("\n"):
                pending = lines.pop()
            self._lines_out += len(lines)
            if lines:
                yield lines
            if final:
                break

    def _likely_encoding(self) -> str:
        """The hint of an encoding error: UTF-16 (Excel's "Unicode Text" export)
        starts with its byte order mark; other files are most often latin-1."""
        assert self._fh is not None
        try:
            start = os.pread(self._fh.fileno(), 2, 0)
        except OSError:
            start = b""
        if start in (b"\xff\xfe", b"\xfe\xff"):
            return "utf-16: it starts with the UTF-16 byte order mark (Excel's Unicode Text)"
        return "e.g. latin-1"

    def _by_line(
        self, decoder: codecs.IncrementalDecoder, data: bytes, pending: str, final: bool
    ) -> Generator[list[str], None, str]:
        """Decode one block a binary line at a time; raise at the undecodable
        line, after yielding the lines before it. Returns the unfinished line."""
        lines: list[str] = []
        chunks: list[bytes | None] = [*io.BytesIO(data).readlines()]
        if final:
            chunks.append(None)
        for chunk in chunks:
            try:
                text = decoder.decode(b"" if chunk is None else chunk, final=chunk is None)
            except UnicodeError as exc:
                if lines:
                    yield lines
                what = (
                    f"byte {exc.object[exc.start : exc.start + 1]!r}"
                    if isinstance(exc, UnicodeDecodeError)
                    else str(exc)
                )
                raise InputFileError(
                    f"cannot be read as {self.dialect.encoding} ({what}); "
                    "set the right one in the program (csv.encoding) or for one import "
                    f"(--encoding), {self._likely_encoding()}",
                    file=self.name,
                    line=self._lines_out + 1,
                ) from None
            pending += text
            while True:
                cut = pending.find("\n")
                if cut < 0:
                    break
                lines.append(pending[: cut + 1])
                self._lines_out += 1
                pending = pending[cut + 1 :]
        if final and pending:
            lines.append(pending)
            self._lines_out += 1
            pending = ""
        if lines:
            yield lines
        return pending

    def _tracked(self) -> Iterator[list[str]]:
        """`_blocks`, remembering the blocks the record being read may span."""
        first_line = 1
        for lines in self._blocks():
            keep = self._next_start
            self._window = [(b, ls) for b, ls in self._window if b + len(ls) > keep]
            self._window.append((first_line, lines))
            first_line += len(lines)
            yield lines

    def _raw(self, start: int, end: int) -> str:
        """The text of physical lines start..end (1-based, inclusive)."""
        base, lines = self._window[-1]
        if start >= base:
            if start == end:
                return lines[start - base]
            return "".join(lines[start - base : end - base + 1])
        parts: list[str] = []
        for base, lines in self._window:
            lo, hi = max(start, base), min(end, base + len(lines) - 1)
            if lo <= hi:
                parts.extend(lines[lo - base : hi - base + 1])
        return "".join(parts)

    def _records(self) -> Iterator[RawRow]:
        lines = chain.from_iterable(self._tracked())
        first = next(lines, None)
        header_start = 1
        while first is not None and not first.strip():
            first = next(lines, None)
            header_start += 1
        if first is None:
            raise InputFileError("the file is empty; expected a header line", file=self.name)
        if "\r" in first.rstrip("\r\n"):
            # Lines split on CR alone (classic Mac) would all read as one line.
            raise InputFileError(
                "the file ends its lines with CR only (old Mac style); "
                "save it with LF or CRLF line ends",
                file=self.name,
                line=header_start,
            )
        if self.dialect.delimiter is None:
            self.delimiter = sniff_delimiter(first)

        reader = csv.reader(
            chain((first,), lines), delimiter=self.delimiter, quotechar='"', doublequote=True
        )
        offset = header_start - 1  # blank lines before the header are skipped
        prev = offset
        self._next_start = header_start
        header_done = False
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, prev = prev + 1, offset + reader.line_num
                self._next_start = prev + 1
                raw = self._raw(start, prev)
                if not header_done:
                    raise InputFileError(
                        f"unreadable header: {exc}", file=self.name, line=start
                    ) from None
                yield RawRow(start, None, raw.rstrip("\r\n"), _csv_reason(exc))
                continue
            start, prev = prev + 1, offset + reader.line_num
            self._next_start = prev + 1
            raw = self._raw(start, prev)
            if not header_done:
                header_done = True
                if fields:
                    fields[0] = fields[0].lstrip("\ufeff")
                self.header = [f.strip() for f in fields]
                self.header_line = start
                yield RawRow(start, fields, raw)  # the header itself; rows() drops it
                continue
            if not (fields and fields[0].strip()) and not any(f.strip() for f in fields):
                continue  # blank line (or only delimiters): not a row
            yield RawRow(start, fields, raw.rstrip("\r\n"))

    def read_header(self) -> list[str]:
        assert self._rows is not None
        next(self._rows)
        if not any(self.header):
            raise InputFileError(
                "the file has no header line", file=self.name, line=self.header_line
            )
        return self.header

    def rows(self) -> Iterator[RawRow]:
        assert self._rows is not None
        return self._rows


def sniff_delimiter(line: str) -> str:
    """The candidate that splits the header line into the most fields (ties: ',')."""
    best, best_count = ",", 1
    for candidate in DELIMITERS:
        try:
            count = len(next(csv.reader([line], delimiter=candidate)))
        except csv.Error:
            continue
        if count > best_count:
            best, best_count = candidate, count
    return best


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a field is longer than {MAX_FIELD} characters"
    return f"unreadable CSV: {text}"


# The UTF-8 byte order mark as latin-1 and cp1252 read it.
_UTF8_BOM_READ_AS_LATIN = "\u00ef\u00bb\u00bf"


def resolve_header(
    header: list[str],
    columns: tuple[str, ...],
    required: tuple[str, ...],
    mapping: dict[str, str],
    file: str,
    line: int = 1,
) -> dict[str, int]:
    """Standard column name -> index in the row. A mapped name is looked up
    first, then the standard name; both exactly, then case-insensitively.
    `line` is the header's (after any blank lines)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if not name:
            continue
        if name in seen:
            raise InputFileError(
                f"column '{name}' appears twice in the header", file=file, line=line
            )
        seen[name] = i
    folded: dict[str, list[str]] = {}
    for name in seen:
        folded.setdefault(name.casefold(), []).append(name)

    def find(name: str) -> int | None:
        alike = folded.get(name.casefold(), [])
        if len(alike) > 1:
            # Amount and AMOUNT: which one holds the amounts is a guess; say so.
            shown = " and ".join(f"'{_one_line(n)}'" for n in alike)
            raise InputFileError(
                f"column '{name}' appears twice in the header (as {shown})", file=file, line=line
            )
        if name in seen:
            return seen[name]
        return seen[alike[0]] if alike else None

    index: dict[str, int] = {}
    for std in columns:
        candidates = [mapping[std], std] if std in mapping else [std]
        for cand in candidates:
            found = find(cand)
            if found is not None:
                index[std] = found
                break
    read_as: dict[int, str] = {}
    for std, i in index.items():
        if i in read_as:
            # `--columns tax=Summa` where amount is Summa too: one column read twice.
            raise InputFileError(
                f"column '{_one_line(header[i])}' would be read as both {read_as[i]} and "
                f"{std}; map one of them to another column (csv.columns in the program, or "
                "--columns for one import)",
                file=file,
                line=line,
            )
        read_as[i] = std
    for std in required:
        if std not in index:
            has = ", ".join(f"'{_one_line(h)}'" for h in header if h) or "no named columns"
            mapped = f" (mapped to '{mapping[std]}')" if std in mapping else ""
            if header and header[0].startswith(_UTF8_BOM_READ_AS_LATIN) and 0 not in index.values():
                # A till that switched its export to UTF-8: the fix is the encoding.
                raise InputFileError(
                    f"column '{std}'{mapped} not found; the file starts with a UTF-8 byte "
                    "order mark read in another encoding: give the encoding as utf-8-sig "
                    "(csv.encoding in the program, or --encoding utf-8-sig)",
                    file=file,
                    line=line,
                )
            raise InputFileError(
                f"column '{std}'{mapped} not found; the file has {has}; "
                f"map it in the program (csv.columns.{std}) or for one import "
                f"(--columns {std}=...)",
                file=file,
                line=line,
            )
    return index


def _one_line(text: str) -> str:
    """A header cell as it can be shown inside a one-line error."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
