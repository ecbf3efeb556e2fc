"""``Idempotency-Key``: a write sent twice with the same key is done once.

The first request with a key reserves it (a row with ``status`` 0, committed before
the work starts, so a concurrent twin finds it); when the work is done the row keeps
the status and JSON body, and later requests with the same key and the same method,
path and body get that answer again without anything being done.

- Same key, different method, path or body: 422 (``validation_error`` on
  ``Idempotency-Key``), following the IETF draft "The Idempotency-Key HTTP Header Field".
- Same key while the first request is still running: 409 ``conflict``; retry later.
- A first request that failed with a server error (5xx) releases its key.
- Keys are per user and kept :data:`TTL`; an older key may be used afresh.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from abm.db import db, utcnow
from abm.errors import ApiError, Conflict
from abm.models import IdempotencyRecord

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 200
IN_PROGRESS = 0


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict | list | None


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def _key_error(message: str) -> ApiError:
    return ApiError(422, message, [{"path": "Idempotency-Key", "message": message}])


def begin(user_id: int, key: str, method: str, path: str, body_hash: str) -> Replay | int:
    """A :class:`Replay` of the first answer, or the id of a fresh reservation to finish.

    Raises 422 when the key was used for another request, 409 while it is in progress.
    """
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise _key_error(f"must be 1 to {MAX_KEY_LENGTH} printable characters")
    for _attempt in range(2):
        row = db.session.execute(select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)).scalar_one_or_none()
        if row is not None and row.created_at < utcnow() - TTL:
            db.session.delete(row)
            db.session.commit()
            row = None
        if row is not None:
            if (row.method, row.path, row.body_hash) != (method, path, body_hash):
                raise _key_error(f"this key was used for another request ({row.method} {row.path} with "
                                 "another body); use a new key for a new request")
            if row.status == IN_PROGRESS:
                raise Conflict("a request with this Idempotency-Key is still being processed; retry in a moment")
            return Replay(row.status, row.response)
        record = IdempotencyRecord(user_id=user_id, key=key, method=method, path=path, body_hash=body_hash,
                                   status=IN_PROGRESS, response=None)
        db.session.add(record)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            continue
        return record.id
    raise Conflict("a request with this Idempotency-Key is still being processed; retry in a moment")


def finish(record_id: int, status: int, body) -> None:
    row = db.session.get(IdempotencyRecord, record_id)
    if row is not None:
        row.status = status
        row.response = body
        db.session.commit()


def abandon(record_id: int) -> None:
    """Release a reservation whose request failed on our side, so a retry does the work."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    db.session.commit()


def purge(older_than: timedelta = TTL) -> int:
    """Delete records past their time; returns how many (for a periodic job)."""
    result = db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - older_than))
    db.session.commit()
    return result.rowcount or 0
