"""CSV imports over the API: ``POST /imports/accounts`` and ``POST /imports/contacts``.

The file comes as the body (``text/csv``) or as a multipart field (``file``, or the
only file sent). The answer is the import report (200) whatever rows were rejected; a
file with no usable header is a 422, a body over the size limit a 413 (the app's).
"""

from __future__ import annotations

from flask import jsonify, request

from abm.api import bp
from abm.auth import api_user, require_role
from abm.errors import ApiError
from abm.services import imports as service

#: Body types read as CSV; spreadsheets and browsers send all of these for a .csv file.
CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv", "text/tab-separated-values",
                       "application/vnd.ms-excel", "application/octet-stream", ""})


def _stream():
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None and len(request.files) == 1:
            upload = next(iter(request.files.values()))
        if upload is None:
            raise ApiError(422, "send the CSV file in a multipart field named 'file'",
                           [{"path": "file", "message": "no file in the request"}])
        return upload.stream, "file"
    if mimetype not in CSV_TYPES:
        raise ApiError(415, f"send the file as text/csv or as multipart/form-data, not {mimetype}")
    return request.stream, "(body)"


def _import(run):
    stream, path = _stream()
    try:
        report = run(stream, actor_id=api_user().id)
    except service.ImportFileError as exc:
        raise ApiError(422, str(exc), [{"path": path, "message": str(exc)}]) from None
    return jsonify(report.to_dict())


@bp.post("/imports/accounts")
@require_role("admin", "manager")
def import_accounts():
    return _import(service.import_accounts)


@bp.post("/imports/contacts")
@require_role("admin", "manager")
def import_contacts():
    return _import(service.import_contacts)
