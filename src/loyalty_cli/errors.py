"""One exception hierarchy for the whole library.

Every error carries where it happened (file, physical line, field path) so the
CLI can turn it into one plain sentence and the documented exit code:
0 done, 1 failed (nothing changed), 2 usage or invalid program/file, 3 done
with rejected rows.
"""

from __future__ import annotations

import os
from typing import Any


def printable(path: str | os.PathLike[str]) -> str:
    """A file name (or a command line naming one) as text that can be printed and
    stored: the bytes of a name that is not UTF-8 (a Latin-1 name from a Windows
    share, which Python reads as U+DCxx stand-ins) written out (`caf\\xe9.csv`)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return text


class LoyaltyError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable whatever a subclass's __init__ takes: a forked import reader
        # hands the failure it met to the importing process.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        elif self.line:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class UsageError(LoyaltyError):
    """Bad flags or arguments."""

    exit_code = 2


class ProgramError(LoyaltyError):
    """The program YAML is invalid (syntax or validation)."""

    exit_code = 2


class InputFileError(LoyaltyError):
    """A CSV file cannot be read at all (encoding, missing column, empty)."""

    exit_code = 2


class FileReadError(InputFileError):
    """A file that exists could not be read (a failing disk, a share gone): the
    command failed (exit 1), the file is not known to be invalid."""

    exit_code = 1


class NotFoundError(LoyaltyError):
    """An id (customer, reward, import, redemption) that does not exist."""

    exit_code = 1


class RedemptionError(LoyaltyError):
    """A redemption that cannot be done: points, tier, limit, voucher."""

    exit_code = 1


class ConflictError(LoyaltyError):
    """The operation contradicts what is stored (already claimed, already undone)."""

    exit_code = 1


class LockedError(LoyaltyError):
    """Another process holds the nightly lock longer than we may wait."""

    exit_code = 1


class NoProgramError(LoyaltyError):
    """No program version has been applied to the database yet."""

    exit_code = 1

    def __init__(self, message: str = "", **kw: object) -> None:
        super().__init__(
            message or "no program applied yet; run `loyalty program apply FILE` first",
            **kw,  # type: ignore[arg-type]
        )


def _rebuild(cls: type[LoyaltyError], message: str, state: dict[str, Any]) -> LoyaltyError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error
