"""CSV imports over the API: ``POST /imports/accounts`` and ``POST /imports/contacts``.

The file comes as the body (``text/csv``) or as a multipart field (``file``, or the
only file sent). The answer is the import report (200) whatever rows were rejected; a
file with no usable header is a 422, a body over the size limit a 413 (the app's).
"""

from __future__ import annotations

import io

from flask import jsonify, request

from abm.api import bp
from abm.api._openapi import MANAGERS, operation, register_schema
from abm.auth import api_user
from abm.errors import ApiError
from abm.services import imports as service

_ROW_ERROR = {"type": "object", "required": ["row", "column", "message"],
              "properties": {"row": {"type": "integer", "description": "the row as a spreadsheet numbers it "
                                                                       "(the header is row 1)"},
                             "column": {"type": "string"}, "message": {"type": "string"}}}
_SKIPPED = {"type": "object", "required": ["row", "column", "reason"],
            "properties": {"row": {"type": "integer"}, "column": {"type": "string"}, "reason": {"type": "string"}}}
REPORT = register_schema("ImportReport", {
    "type": "object",
    "required": ["created", "updated", "skipped", "rejected", "errors", "rows", "errors_total"],
    "properties": {
        "created": {"type": "integer"}, "updated": {"type": "integer"},
        "skipped": {"type": "integer", "description": "rows not imported: suppressed, or replaced by a later "
                                                      "row with the same key"},
        "rejected": {"type": "integer", "description": "rows not imported because of an error"},
        "rows": {"type": "integer", "description": "data rows read (blank lines not counted)"},
        "errors": {"type": "array", "items": _ROW_ERROR, "maxItems": service.MAX_LISTED},
        "errors_total": {"type": "integer"},
        "errors_not_listed": {"type": "integer"},
        "skipped_rows": {"type": "array", "items": _SKIPPED},
        "columns": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "header -> the field it was read into"},
        "attribute_columns": {"type": "object", "additionalProperties": {"type": "string"},
                              "description": "header -> the attribute key unknown columns were kept under"},
        "encoding": {"type": "string"}, "delimiter": {"type": "string"},
        "unlinked": {"type": "integer", "description": "contacts: new contacts left without an account"},
    },
})
CSV_BODY = {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
}}
RESPONSES = {200: ("The import report: good rows imported, bad rows listed", REPORT),
             415: "the body is neither text/csv nor multipart/form-data",
             422: "the file has no usable header (or the multipart request no file)"}
DESCRIPTION = ("HubSpot and Salesforce exports are read as they are: header aliases, UTF-8 or Windows-1252, "
               "comma, semicolon or tab delimited. Unknown columns are kept as attributes. See docs/imports.md.")


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
    # text/csv: @operation refused any other type (415) already
    if request.headers.get("Idempotency-Key"):
        return io.BytesIO(request.get_data(cache=True)), "(body)"  # already read to fingerprint it
    return request.stream, "(body)"


def _import(run):
    stream, path = _stream()
    try:
        report = run(stream, actor_id=api_user().id)
    except service.ImportFileError as exc:
        raise ApiError(422, str(exc), [{"path": path, "message": str(exc)}]) from None
    return jsonify(report.to_dict())


@bp.post("/imports/accounts")
@operation("Import accounts from a CSV file (upsert by domain)", roles=MANAGERS, request_body=CSV_BODY,
           responses=RESPONSES, description=DESCRIPTION, tags=["imports"])
def import_accounts():
    return _import(service.import_accounts)


@bp.post("/imports/contacts")
@operation("Import contacts from a CSV file (upsert by email, linked to accounts by domain)", roles=MANAGERS,
           request_body=CSV_BODY, responses=RESPONSES, description=DESCRIPTION, tags=["imports"])
def import_contacts():
    return _import(service.import_contacts)
