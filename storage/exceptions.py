"""The storage room's errors: one root, ``StorageError``, which the CLI turns into one line and
exit code 2. SQLAlchemy and driver errors are wrapped ``from e`` so developers keep the cause.

The split matters to callers: ``DatabaseUnavailable`` is worth retrying (the worker does, with
tenacity), everything else is not; retrying a refused statement or a bad record never helps.
"""

from __future__ import annotations

from collections.abc import Sequence


class StorageError(Exception):
    """A store problem a user can fix or must know about."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached, or is busy/locked right now: retry later."""


class MigrationError(StorageError):
    """The schema could not be brought to the expected revision."""


class InvalidDocument(StorageError):
    """Items of a batch cannot be stored as they are (a key too long, a NaN score...).

    Nothing of the batch was written. ``reasons`` maps each bad item's position in the batch
    to why, so a caller can dead-letter those and save the rest.
    """

    def __init__(self, reasons: dict[int, str]) -> None:
        self.reasons = dict(reasons)
        first = next(iter(self.reasons.items()))
        more = f" (and {len(self.reasons) - 1} more)" if len(self.reasons) > 1 else ""
        super().__init__(f"batch item {first[0]} cannot be stored: {first[1]}{more}")

    @property
    def positions(self) -> Sequence[int]:
        return sorted(self.reasons)


class SqlRefused(StorageError):
    """An ad-hoc statement is not a single read-only query (or the database refused it as one)."""


class SqlTimeout(StorageError):
    """An ad-hoc statement ran past its time limit and was interrupted."""


class SqlFailed(StorageError):
    """An ad-hoc statement was allowed but failed in the database (syntax, unknown table...)."""
