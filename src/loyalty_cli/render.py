"""Rendering shared by the listing and report commands: Rich tables, CSV, JSON.

    render_rows(rows, fmt, columns=None, title=None)

`rows` are dicts of plain values (str, int, Decimal, date, None, float rates).
JSON is one document (money already as decimal strings from the library);
CSV goes through the csv module with spreadsheet formulas neutralised; the
table is Rich, numbers right-aligned.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # Rich is imported where a table is drawn: JSON and CSV never need it.
    from rich.console import Console
    from rich.table import Table

# A cell a spreadsheet would run as a formula starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
# A number or an ISO date: what a column of figures may hold.
_FIGURE = re.compile(r"^[+-]?\d+(\.\d+)?$|^\d{4}-\d{2}-\d{2}$")


def count(n: int, noun: str) -> str:
    """`1 receipt`, `2 receipts`: a number and its noun, in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def safe_cell(value: Any) -> Any:
    """Neutralise a text cell a spreadsheet would run as a formula (prefix ').

    Numbers (int, Decimal, float) and text that is a plain number ("-5",
    "-12.50") are left as they are: they are data, not formulas.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.match(value):
        return "'" + value
    return value


def cell_text(value: Any) -> str:
    """A value as CSV/table text: None empty, dates ISO, Decimals plain."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def utf8(stream: IO[str]) -> IO[str]:
    """The stream, writing UTF-8 (reconfigured when the locale gave it another
    encoding: a latin-1 one would write Björn in latin-1, an ASCII one fail on it)."""
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "")
    if encoding != "utf8" and hasattr(stream, "reconfigure"):
        stream.reconfigure(encoding="utf-8")
    return stream


def json_default(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=json_default)


class _VisibleRows:
    """A CSV writer for a terminal: control characters in the cells are written out
    (`visible`), as in tables; into a file or a pipe the data goes as it is."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([visible(c) if isinstance(c, str) else c for c in row])


def csv_writer(out: IO[str] | None = None) -> Any:
    """`csv.writer` on `out` (default stdout) with "\n" line ends; on a terminal, one
    that writes control characters out."""
    target = out if out is not None else sys.stdout
    writer = csv.writer(target, lineterminator="\n")
    isatty = getattr(target, "isatty", None)
    return _VisibleRows(writer) if isatty is not None and isatty() else writer


def write_csv(
    header: Sequence[str], rows: Iterable[Sequence[Any]], out: IO[str] | None = None
) -> None:
    """Write CSV (header + rows) with formula neutralising; out defaults to stdout."""
    writer = csv_writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell_text(safe_cell(v)) for v in row])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _layout(
    rows: list[dict[str, Any]], columns: Sequence[str] | None
) -> tuple[list[str], list[bool], list[list[str]]]:
    """(columns, right-aligned or not, the cells as text): numbers are right-aligned."""
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    right = [
        bool(rows)
        and all(_is_number(r.get(col)) or _NUMBER.match(str(r.get(col) or "")) for r in rows)
        for col in cols
    ]
    return cols, right, [[table_text(row.get(c)) for c in cols] for row in rows]


def table(
    rows: list[dict[str, Any]], columns: Sequence[str] | None = None, title: str | None = None
) -> Table:
    """A Rich table of dict rows (numbers right-aligned)."""
    return _rich_table(*_layout(rows, columns), title)


def _rich_table(
    cols: list[str],
    right: list[bool],
    cells: list[list[str]],
    title: str | None,
    widths: list[int] | None = None,
) -> Table:
    from rich.table import Table

    tbl = Table(title=title, show_lines=False, header_style="bold")
    for n, (col, is_right) in enumerate(zip(cols, right, strict=True)):
        width = widths[n] if widths is not None else None
        tbl.add_column(col, justify="right" if is_right else "left", width=width)
    for row in cells:
        tbl.add_row(*row)
    return tbl


_RICH_ONLY = ("Cc", "Cs", "Zl", "Zp")


def _plain_table(
    cols: list[str], right: list[bool], cells: list[list[str]], title: str | None
) -> str | None:
    """The text Rich prints for this table into a file or a pipe (no styles, full
    width), written directly: Rich measures and renders cell by cell, which takes
    half a minute for a listing of 100,000 customers. None when a cell or the title
    holds what only Rich lays out right (line breaks, control characters, a title
    wider than the table): then Rich draws it."""
    from rich.cells import cell_len

    if not cols:
        return None

    def width(text: str) -> int | None:
        if text[:1].isspace() or text[-1:].isspace():
            return None  # Rich trims it in a right-aligned column: let Rich draw it
        if text.isascii():
            return len(text) if text.isprintable() else None
        # Rich measures every other character as cell_len does; these it draws its own
        # way (control characters, line breaks, a skin-tone modifier with nothing to
        # modify), so Rich draws the table.
        for ch in text:
            if unicodedata.category(ch) in _RICH_ONLY or 0x1F3FB <= ord(ch) <= 0x1F3FF:
                return None
        # Text of no width (a lone combining mark): Rich crops it away in a column
        # of width 0, so Rich draws the table.
        return cell_len(text) or None

    widths: list[list[int]] = []
    for row in [cols, *cells]:
        measured = [width(text) for text in row]
        if None in measured:
            return None
        widths.append(measured)  # type: ignore[arg-type]
    span = [max(column) for column in zip(*widths, strict=True)]

    def line(texts: list[str], sizes: list[int], bar: str) -> str:
        parts = []
        for text, size, full, is_right in zip(texts, sizes, span, right, strict=True):
            pad = " " * (full - size)
            parts.append(f" {pad}{text} " if is_right else f" {text}{pad} ")
        return bar + bar.join(parts) + bar

    total = _table_width(span)
    out = []
    if title:
        size = width(title)
        if size is None or size > total:
            return None
        left = (total - size) // 2
        out.append(" " * left + title + " " * (total - size - left))
    out.append("┏" + "┳".join("━" * (w + 2) for w in span) + "┓")
    out.append(line(cols, widths[0], "┃"))
    out.append("┡" + "╇".join("━" * (w + 2) for w in span) + "┩")
    out.extend(line(row, sizes, "│") for row, sizes in zip(cells, widths[1:], strict=True))
    out.append("└" + "┴".join("─" * (w + 2) for w in span) + "┘")
    return "\n".join(out) + "\n"


def table_text(value: Any) -> str:
    """Table text: rates (floats) to 4 decimals for the eye; csv and json keep them whole."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return visible(cell_text(value))


# Control characters but line feed and tab (C0, DEL and C1), and the stand-ins Python
# reads a file name's non-UTF-8 bytes as (U+DC80-U+DCFF, which no stream can write).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udcff]")


def visible(text: str) -> str:
    """Text for the terminal with its control characters written out (`\\x1b`): a
    customer name or a till file's cell holding an escape sequence would otherwise
    recolour or retitle the shop's terminal, whatever NO_COLOR says. CSV and JSON
    keep the data as it is."""
    return _CONTROL.sub(_written_out, text)


def _written_out(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def console(
    file: IO[str] | None = None, soft_wrap: bool = False, width: int | None = None
) -> Console:
    """A Rich console on stdout (colour only on a terminal, NO_COLOR honoured)."""
    # Rich alone drops only the colours under NO_COLOR and keeps bold/italic escape
    # codes; a shop's log or screen reader wants plain text, so no styles at all.
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR"))
    # No markup or emoji codes in what we print: names and ids come from the
    # shop's files, and "[/bold]" or ":birthday:" in them must print as written.
    return Console(
        file=file or sys.stdout,
        soft_wrap=soft_wrap,
        color_system=None if plain else "auto",
        width=width,
        markup=False,
        emoji=False,
    )


def working(text: str) -> AbstractContextManager[Any]:
    """A spinner with `text` on stderr while a long step runs (only on a terminal:
    logs and pipes get nothing)."""
    if not sys.stderr.isatty():
        return nullcontext()
    return console(sys.stderr).status(text)


def print_table(tbl: Table, file: IO[str] | None = None) -> None:
    """A table on a terminal fits the window; into a file or a pipe it is printed
    at its full width (Rich would cut it to 80 columns: `2026-0…` in a log)."""
    from rich.measure import Measurement

    out = console(file)
    if not out.is_terminal:
        need = Measurement.get(out, out.options.update(max_width=100_000), tbl).maximum
        if need > out.width:
            out = console(file, width=need)
    out.print(tbl)


def render_rows(
    rows: list[dict[str, Any]],
    fmt: str,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    out: IO[str] | None = None,
) -> None:
    """Print a listing as a Rich table, CSV or one JSON list."""
    fmt = str(getattr(fmt, "value", fmt))
    target = out if out is not None else sys.stdout
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt == "json":
        target.write(to_json(rows) + "\n")
    elif fmt == "csv":
        write_csv(cols, ([r.get(c) for c in cols] for r in rows), target)
    else:
        _print_rows(rows, cols, title, target)


def _print_rows(
    rows: list[dict[str, Any]],
    cols: Sequence[str],
    title: str | None,
    target: IO[str],
    right: list[bool] | None = None,
) -> None:
    layout = _layout(rows, cols)
    if right is not None:
        layout = (layout[0], right, layout[2])
    out = console(target)
    if not out.is_terminal and (text := _plain_table(*layout, title)) is not None:
        target.write(text)
        return
    widths = None
    if out.is_terminal and rows:
        full, least = _column_widths(layout[0], layout[2])
        if _table_width(full) > out.width:
            # Too wide for the window: Rich would cut ids, dates and amounts to
            # `202…`. Only text with spaces wraps; if even that does not fit, a block
            # per row.
            widths = _fitted_widths(full, least, out.width)
            if widths is None:
                _print_records(out, layout[0], layout[2], title)
                return
    print_table(_rich_table(*layout, title, widths), target)


def _table_width(columns: list[int]) -> int:
    """The width of a table with columns this wide: a border, and a space each side
    of every cell."""
    return sum(columns) + 3 * len(columns) + 1


def _column_widths(cols: list[str], cells: list[list[str]]) -> tuple[list[int], list[int]]:
    """Each column's width unwrapped, and the narrowest it may get with every id,
    number and date whole: a column whose cells have no space is never narrowed,
    the others wrap at their spaces (never narrower than their longest word)."""
    from rich.cells import cell_len

    full: list[int] = []
    least: list[int] = []
    for i, col in enumerate(cols):
        texts = [col, *(row[i] for row in cells)]
        # Rich breaks lines at "\n" only (splitlines() would also break at "\r").
        lines = [line for text in texts for line in text.split("\n")]
        full.append(max(map(cell_len, lines), default=1) or 1)
        wraps = any(" " in text for text in texts[1:])
        words = [word for line in lines for word in line.split()] if wraps else lines
        least.append(max(map(cell_len, words), default=1) or 1)
    return full, least


def _fitted_widths(full: list[int], least: list[int], width: int) -> list[int] | None:
    """Column widths from `least` up that fit the table in `width`, the room left
    going to the wrapped columns left to right; None when even `least` does not."""
    sizes = list(least)
    room = width - _table_width(sizes)
    if room < 0:
        return None
    for i, size in enumerate(sizes):
        more = min(room, full[i] - size)
        sizes[i], room = size + more, room - more
    return sizes


def _print_records(
    out: Console, cols: list[str], cells: list[list[str]], title: str | None
) -> None:
    """Each row as `column  value` lines, rows apart by a blank line."""
    from rich.text import Text

    pad = max(len(col) for col in cols)
    if title:
        out.print(Text(title, style="bold"))
    # A print per row: a listing of thousands is never held as one text.
    for n, row in enumerate(cells):
        if n or title:
            out.print()
        block = Text()
        for i, (col, value) in enumerate(zip(cols, row, strict=True)):
            name = col.ljust(pad) if value else col
            block.append_text(Text.assemble("\n" if i else "", (name, "bold")))
            block.append(f"  {value}" if value else "")
        out.print(block)


def render_mapping(
    data: dict[str, Any], fmt: str, title: str | None = None, out: IO[str] | None = None
) -> None:
    """Print one record (a dict of scalars): table of key/value, CSV one row, or JSON."""
    fmt = str(getattr(fmt, "value", fmt))
    target = out if out is not None else sys.stdout
    if fmt == "json":
        target.write(to_json(data) + "\n")
    elif fmt == "csv":
        write_csv(list(data), [list(data.values())], target)
    else:
        rows = [{"name": k, "value": v} for k, v in data.items()]
        # The KPIs' values are numbers with the period's two dates: right-aligned,
        # the digits line up as on an accountant's sheet (the dates are all as wide).
        figures = all(v is None or _is_number(v) or _FIGURE.match(str(v)) for v in data.values())
        _print_rows(rows, ["name", "value"], title, target, [False, figures])


OFFER_COLUMNS = ["customer_id", "name", "email", "segment", "offer_id", "detail"]
BAR_WIDTH = 40


def _bar(value: Decimal, top: Decimal, width: int = BAR_WIDTH) -> str:
    if top <= 0 or value <= 0:
        return ""
    return "█" * max(1, int(value / top * width))


def summary_lines(data: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The summary document flattened to (section, key, value) rows (its CSV form)."""
    out: list[tuple[str, str, Any]] = [
        ("period", "from", data["from"]),
        ("period", "to", data["to"]),
        ("customers", "members", data["members"]),
        ("customers", "active", data["active_customers"]),
        ("customers", "new", data["new_customers"]),
    ]
    for m in data["revenue_by_month"]:
        out.append(("revenue_members", m["month"], m["members"]))
        out.append(("revenue_non_members", m["month"], m["non_members"]))
    out += [("tiers", t["tier"], t["customers"]) for t in data["tiers"]]
    out += [("tiers_share", t["tier"], t["share"]) for t in data["tiers"]]
    out += [("segments", k, v) for k, v in data["segments"].items()]
    out += [("points", k, v) for k, v in data["points"].items()]
    out.append(("points", "outstanding", data["outstanding_points"]))
    out.append(("points", "liability", data["liability"]))
    for r in data["top_rewards"]:
        out += [
            ("top_rewards", r["reward_id"], r["redemptions"]),
            ("top_rewards_points", r["reward_id"], r["points"]),
            ("top_rewards_value", r["reward_id"], r["value"]),
        ]
    return out


def render_summary(data: dict[str, Any], fmt: str, out: IO[str] | None = None) -> None:
    """`report summary`: JSON document, CSV (section, key, value) or one Rich screen."""
    fmt = str(getattr(fmt, "value", fmt))
    target = out if out is not None else sys.stdout
    if fmt == "json":
        target.write(to_json(data) + "\n")
        return
    if fmt == "csv":
        write_csv(["section", "key", "value"], summary_lines(data), target)
        return
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.text import Text

    con = console(target)
    con.rule(Text(f"Summary {data['from']} – {data['to']}", style="bold"))
    head = Text()
    head.append(f"Members {data['members']}   ", style="bold")
    head.append(f"Active {data['active_customers']}   New {data['new_customers']}")
    con.print(head)

    months = data["revenue_by_month"]
    top = max(
        [Decimal(m["members"]) for m in months] + [Decimal(m["non_members"]) for m in months],
        default=Decimal(0),
    )
    # The amounts' column as wide as the widest amount; the bars take what the
    # window leaves (panel border and padding: 4), at most BAR_WIDTH.
    amount = max(
        [len(m["members"]) for m in months] + [len(m["non_members"]) for m in months] + [12]
    )
    label = len("2026-01 non-members ") + amount + 1
    width = max(1, min(BAR_WIDTH, con.width - 4 - label))
    bars = Text()
    for i, m in enumerate(months):
        mem, anon = Decimal(m["members"]), Decimal(m["non_members"])
        bars.append(("\n" if i else "") + f"{m['month']} members     {m['members']:>{amount}} ")
        bars.append(_bar(mem, top, width) + "\n", style="green")
        bars.append(f"{'':7} non-members {m['non_members']:>{amount}} ")
        bars.append(_bar(anon, top, width), style="blue")
    con.print(Panel(bars, title="Net revenue by month", expand=False))

    tier_rows = [{"tier": t["tier"], "customers": t["customers"]} for t in data["tiers"]]
    seg_rows = [{"segment": k, "customers": v} for k, v in data["segments"].items()]
    pts = data["points"]
    point_rows = [
        {"points": "issued", "value": pts["issued"]},
        {"points": "redeemed", "value": pts["redeemed"]},
        {"points": "expired", "value": pts["expired"]},
        {"points": "outstanding", "value": data["outstanding_points"]},
        {"points": "liability", "value": data["liability"]},
    ]
    con.print(
        Columns(
            [
                table(tier_rows, ["tier", "customers"], "Tiers"),
                table(seg_rows, ["segment", "customers"], "Segments"),
                table(point_rows, ["points", "value"], "Points"),
            ]
        )
    )
    if data["top_rewards"]:
        con.print(
            table(
                data["top_rewards"],
                ["reward_id", "redemptions", "points", "value"],
                "Top rewards",
            )
        )
