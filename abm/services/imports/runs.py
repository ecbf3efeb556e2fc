"""Imports as jobs: a file handed in is stored and queued; a worker reads it; its row tells the rest.

The web page and the API call :func:`start` (the header is checked at once, so a file
that cannot be imported is refused in the request); a worker runs :func:`execute`; both
read :func:`get` and :func:`history`. ``abm import`` runs an import inline instead.

Three kinds: ``accounts`` and ``contacts`` (the importers of this package) and ``intent``
(a Company Surge file, read by :mod:`abm.services.intent`, the rule's one home, which
``abm intent import-surge`` calls inline).
"""

from __future__ import annotations

import io
from importlib import resources

from sqlalchemy import delete, select, update

from abm.db import db, utcnow
from abm.models import ImportFile, ImportRun, User
from abm.services import intent
from abm.services.imports.accounts import AccountImporter
from abm.services.imports.contacts import ContactImporter
from abm.services.imports.importer import BATCH_SIZE, Importer
from abm.services.imports.reading import Source
from abm.services.imports.report import ImportFileError
from workers import enqueue

IMPORTERS: dict[str, type[Importer]] = {"accounts": AccountImporter, "contacts": ContactImporter}
KINDS = (*IMPORTERS, "intent")
HISTORY_LIMIT = 50


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ImportFileError(f"choose accounts, contacts or intent, not {kind!r}")


def _check_header(kind: str, data: bytes) -> None:
    if kind == "intent":
        intent.check_header(io.BytesIO(data))
    else:
        IMPORTERS[kind](None, None, 1).read_header(Source(io.BytesIO(data)))


def _import(kind: str, data: bytes, actor_id: int | None, progress, tune_interpreter: bool) -> dict:
    """Import ``data`` as ``kind``; the report as a dict."""
    if kind == "intent":
        return intent.import_surge(io.BytesIO(data), progress=progress, actor_id=actor_id).to_report()
    return IMPORTERS[kind](actor_id, progress, BATCH_SIZE, tune_interpreter).run(io.BytesIO(data)).to_dict()


def start(kind: str, data: bytes, filename: str, actor_id: int | None) -> ImportRun:
    """Store ``data`` as an import run of ``kind`` and queue it; the run (status ``queued``).

    Raises ImportFileError, before anything is stored, when the file has no usable header.
    """
    check_kind(kind)
    _check_header(kind, data)
    run = ImportRun(kind=kind, filename=(filename or "(body)")[:255], status="queued", actor_id=actor_id,
                    bytes_total=len(data), bytes_read=0)
    db.session.add(run)
    db.session.flush()
    db.session.add(ImportFile(run_id=run.id, data=data))
    db.session.commit()
    enqueue.import_run(run.id)
    return run


def execute(run_id: int, tune_interpreter: bool = False) -> dict:
    """Read the queued file of run ``run_id`` into the database (the job); its report as a dict.

    Progress (bytes read) is written on the run after each batch, on a connection of its own
    so that the page sees it while the import's transactions are still open. A run found
    done or failed already (the job ran twice) is left as it is.
    """
    run = db.session.get(ImportRun, run_id)
    if run is None or run.status in ("done", "failed"):
        return run.report if run is not None and run.report else {}
    data = db.session.execute(select(ImportFile.data).where(ImportFile.run_id == run_id)).scalar_one_or_none()
    run.status, run.started_at, kind, actor_id = "running", utcnow(), run.kind, run.actor_id
    db.session.commit()
    try:
        if data is None:
            raise ImportFileError("the file of this import is gone (it was deleted before a worker read it)")
        report = _import(kind, data, actor_id, lambda n: _progress(run_id, n), tune_interpreter)
    except ImportFileError as exc:
        _finish(run_id, status="failed", error=str(exc))
        return {}
    except Exception as exc:
        db.session.rollback()
        _finish(run_id, status="failed", error=f"the import stopped: {type(exc).__name__}: {str(exc)[:300]}")
        raise
    _finish(run_id, status="done", report=report, bytes_read=len(data))
    return report


def _progress(run_id: int, bytes_read: int) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(ImportRun).where(ImportRun.id == run_id).values(bytes_read=bytes_read))


def _finish(run_id: int, **values) -> None:
    db.session.execute(update(ImportRun).where(ImportRun.id == run_id).values(finished_at=utcnow(), **values))
    db.session.execute(delete(ImportFile).where(ImportFile.run_id == run_id))
    db.session.commit()


def get(run_id: int) -> ImportRun | None:
    return db.session.get(ImportRun, run_id)


def history(limit: int = HISTORY_LIMIT) -> list[tuple[ImportRun, str | None]]:
    """The latest import runs, newest first, each with the email of who started it."""
    rows = db.session.execute(select(ImportRun, User.email).outerjoin(User, User.id == ImportRun.actor_id)
                              .order_by(ImportRun.id.desc()).limit(limit)).all()
    return [(run, email) for run, email in rows]


def serialize(run: ImportRun, actor_email: str | None = None) -> dict:
    out = {"id": run.id, "kind": run.kind, "filename": run.filename, "status": run.status,
           "created_at": run.created_at.isoformat(),
           "started_at": run.started_at.isoformat() if run.started_at else None,
           "finished_at": run.finished_at.isoformat() if run.finished_at else None,
           "bytes_total": run.bytes_total, "bytes_read": run.bytes_read,
           "progress": round(run.bytes_read / run.bytes_total, 3) if run.bytes_total else 1.0,
           "report": run.report, "error": run.error}
    if actor_email is not None:
        out["actor"] = actor_email
    return out


def sample(kind: str) -> bytes:
    """A small file of ``kind`` that imports without a problem, with the columns the importer knows."""
    check_kind(kind)
    return resources.files("abm.services.imports").joinpath(f"sample_{kind}.csv").read_bytes()
