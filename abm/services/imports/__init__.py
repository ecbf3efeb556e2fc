"""CSV import of accounts and contacts, as real CRMs export them.

``import_accounts(stream)`` and ``import_contacts(stream)`` read a CSV file (a binary
stream) in one pass and write it in batches: one lookup and one
``INSERT ... ON CONFLICT DO UPDATE`` per batch, never a database round trip per row,
so memory stays flat whatever the size of the file. Good rows are imported; bad rows
are reported with their row number as a spreadsheet shows it (the header is row 1).

What the importer accepts and the choices it makes are written down in
``docs/imports.md``; the short version:

- headers are matched case- and punctuation-insensitively against the aliases below
  (HubSpot and Salesforce export names included); every other column is kept, per
  row, in the record's ``attributes`` under a snake_case key, and the report lists it;
- UTF-8 (with or without a BOM), UTF-16 with a BOM, or Windows-1252; the delimiter
  (comma, semicolon, tab or pipe) is sniffed from the header line;
- an empty cell never erases what is stored; a column that cannot be read in a row
  (owner, stage, tier, ...) is reported and the rest of the row is imported; a row
  whose key (domain, email) is unusable is rejected;
- duplicate keys in one file: the last row wins, the earlier ones are reported.

The package's modules, in the order a file meets them: :mod:`.reading` (bytes to rows),
:mod:`.columns` (the header), :mod:`.cells` (one cell), :mod:`.importer` (the driver:
batches read by one thread and written by another), :mod:`.accounts` and
:mod:`.contacts` (a row of each kind parsed and written), :mod:`.postgres_copy` (COPY's
text format and the SQL pieces), :mod:`.report` (what it did), :mod:`.tuning` (the
interpreter in a process that runs nothing else), :mod:`.runs` (an import as a job, its
progress and its history).
"""

from __future__ import annotations

from typing import BinaryIO

from abm.services.imports.accounts import AccountImporter
from abm.services.imports.cells import attribute_key, email_hash, header_key, parse_amount, parse_tier
from abm.services.imports.contacts import ContactImporter
from abm.services.imports.importer import BATCH_SIZE, ProgressFn
from abm.services.imports.postgres_copy import copy_rows
from abm.services.imports.report import MAX_LISTED, ImportFileError, ImportReport


def import_accounts(stream: BinaryIO, actor_id: int | None = None, progress: ProgressFn | None = None,
                    batch_size: int = BATCH_SIZE, tune_interpreter: bool = False) -> ImportReport:
    """Import accounts from a CSV stream; upsert by normalised domain.

    ``progress(bytes_read)`` is called after each batch. Raises ImportFileError when the
    file has no usable header. ``tune_interpreter``: see :func:`.tuning.tuned_if_alone`
    (the command line and the import job ask for it; a web server never runs an import).
    """
    return AccountImporter(actor_id, progress, batch_size, tune_interpreter).run(stream)


def import_contacts(stream: BinaryIO, actor_id: int | None = None, progress: ProgressFn | None = None,
                    batch_size: int = BATCH_SIZE, tune_interpreter: bool = False) -> ImportReport:
    """Import contacts from a CSV stream; upsert by normalised email, linked to accounts by domain."""
    return ContactImporter(actor_id, progress, batch_size, tune_interpreter).run(stream)


__all__ = ["BATCH_SIZE", "MAX_LISTED", "ImportFileError", "ImportReport", "attribute_key", "copy_rows",
           "email_hash", "header_key", "import_accounts", "import_contacts", "parse_amount", "parse_tier"]
