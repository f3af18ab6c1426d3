"""CSV imports: dialects, streaming rows, typed cells, keys, duplicates, rejects.

Public API (what the CLI and other modules call)::

    from loyalty_cli.importing import import_files, list_imports, list_rejects, undo_import
    results = import_files(conn, "purchases", [Path("day.csv")], dry_run=False, strict=False)

Each file is read row by row (memory flat in file size), checked, and written in
batches inside ONE transaction: a file is imported completely or not at all.
A file whose sha256 matches an earlier, not undone import of the same kind is
skipped. Bad rows are rejected (kept in the `rejects` table with file, physical
line, field and reason) and the rest goes on; `strict=True` fails the file on
the first rejected row instead.

Adding a kind (the extension point)
-----------------------------------
A kind is one module in this package, named after the kind, that defines
`KIND`: a subclass of `kinds.KindHandler` declaring

* `name` (the CLI word), `table`, `columns` (standard names, all accepted),
  `required` (columns that must be in the header), `key_fields` (the
  row key) and `compare_fields` (what "same content" means for a duplicate);
* `parse(self, cells) -> dict` - the row parser: typed values from a `Cells`
  (`cells.text`, `cells.required`, `cells.ident`, `cells.date`, `cells.amount`,
  ...), raising `RowRejected(field, reason)` for a bad row;
* optionally `write(self, records)` (the row writer; default: executemany
  INSERT of `insert_fields` + import_id), `accept(...)` for other duplicate
  rules (customers upsert) and `undo(...)` for `import undo`.

Then add the module name to `kinds.KIND_MODULES` and a CLI subcommand with
`cli.imports.add_kind_command(group, name, help)`. Nothing else changes:
dialects, line numbers, rejects, strict, dry-run, hashing and progress come
from the framework.
"""

from loyalty_cli.importing.dialect import DialectOverrides
from loyalty_cli.importing.service import (
    ImportResult,
    import_files,
    list_imports,
    list_rejects,
    undo_import,
)

__all__ = [
    "DialectOverrides",
    "ImportResult",
    "import_files",
    "list_imports",
    "list_rejects",
    "undo_import",
]
