"""What an import did: the report counted and listed row by row, and the file-level error."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LISTED = 1000  # errors and skipped rows listed in a report; the rest are counted


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no usable header, unreadable)."""


class RowErrors:
    """The row errors of an import, the first :data:`MAX_LISTED` listed and all counted
    (in the dataclass's ``errors`` and ``errors_total``): one rule for every kind of import."""

    errors: list[dict]
    errors_total: int

    def error(self, row: int, column: str, message: str) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append({"row": row, "column": column, "message": message})

    def not_listed(self) -> dict[str, int]:
        """``errors_not_listed`` for the report, when some were counted and not listed."""
        unlisted = self.errors_total - len(self.errors)
        return {"errors_not_listed": unlisted} if unlisted > 0 else {}


@dataclass
class ImportReport(RowErrors):
    """What an import did. ``rows`` = created + updated + unchanged + skipped + rejected.

    ``updated`` counts the stored records whose values the file changed; ``unchanged`` the
    stored records it named with the values they already had (left as they were).
    """

    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rejected: int = 0
    rows: int = 0
    unlinked: int = 0
    errors: list[dict] = field(default_factory=list)
    errors_total: int = 0
    skipped_rows: list[dict] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    attribute_columns: dict[str, str] = field(default_factory=dict)
    encoding: str = ""
    delimiter: str = ""

    def skip(self, row: int, column: str, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_rows) < MAX_LISTED:
            self.skipped_rows.append({"row": row, "column": column, "reason": reason})

    def merge(self, other: ImportReport) -> None:
        """Add what ``other`` (a batch's report) counted and listed."""
        for name in ("created", "updated", "unchanged", "skipped", "rejected", "unlinked", "errors_total"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors[:MAX_LISTED - len(self.errors)])
        self.skipped_rows.extend(other.skipped_rows[:MAX_LISTED - len(self.skipped_rows)])

    def to_dict(self) -> dict:
        out = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
               "skipped": self.skipped, "rejected": self.rejected, "errors": self.errors, **self.not_listed()}
        out.update(rows=self.rows, errors_total=self.errors_total, skipped_rows=self.skipped_rows,
                   columns=self.columns, attribute_columns=self.attribute_columns,
                   encoding=self.encoding, delimiter=self.delimiter)
        if self.kind == "contacts":
            out["unlinked"] = self.unlinked
        return out
