"""CSV imports over the API: ``POST /imports/accounts``, ``/imports/contacts`` and ``/imports/intent``
(a Company Surge file), run as jobs.

The file comes as the body (``text/csv``) or as a multipart field (``file``, or the
only file sent). Its header is checked at once (no usable header: 422; over the size
limit: 413, the app's); the import itself runs in a worker: the answer is 202 with the
import run and its ``Location``, ``GET /imports/{id}`` tells its progress and, once
``done``, its report; ``GET /imports`` lists the latest runs.
"""

from __future__ import annotations

from flask import jsonify, request, url_for
from werkzeug.exceptions import NotFound

from abm.api import bp
from abm.api._openapi import MANAGERS, operation, register_schema
from abm.auth import api_user
from abm.errors import ApiError
from abm.services import imports as service
from abm.services.imports import runs

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
        "created": {"type": "integer"},
        "updated": {"type": "integer", "description": "stored records whose values the file changed"},
        "unchanged": {"type": "integer", "description": "stored records the file named with the values they had"},
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
        "unmatched": {"type": "integer", "description": "intent: signals stored for domains that match no "
                                                        "account yet (matched when the account appears)"},
    },
})
CSV_BODY = {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
}}
RUN = register_schema("ImportRun", {
    "type": "object",
    "required": ["id", "kind", "filename", "status", "created_at", "bytes_total", "bytes_read", "progress"],
    "properties": {
        "id": {"type": "integer"}, "kind": {"type": "string", "enum": list(runs.KINDS)},
        "filename": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "bytes_total": {"type": "integer"}, "bytes_read": {"type": "integer"},
        "progress": {"type": "number", "description": "share of the file read, 0 to 1"},
        "report": {"oneOf": [REPORT, {"type": "null"}], "description": "once done"},
        "error": {"type": ["string", "null"], "description": "why a failed run failed"},
        "actor": {"type": "string", "description": "the email of who started it (lists only)"},
    },
})
RESPONSES = {202: ("The import run, queued: follow it at its Location (GET /imports/{id})", RUN),
             415: "the body is neither text/csv nor multipart/form-data",
             422: "the file has no usable header (or the multipart request no file)"}
DESCRIPTION = ("HubSpot and Salesforce exports are read as they are: header aliases, UTF-8 or Windows-1252, "
               "comma, semicolon or tab delimited. Unknown columns are kept as attributes. See docs/imports.md.")


def _data() -> tuple[bytes, str, str]:
    """(the file's bytes, its name, where it came from: "file" or "(body)")."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None and len(request.files) == 1:
            upload = next(iter(request.files.values()))
        if upload is None:
            raise ApiError(422, "send the CSV file in a multipart field named 'file'",
                           [{"path": "file", "message": "no file in the request"}])
        return upload.stream.read(), upload.filename or "(file)", "file"
    # text/csv: @operation refused any other type (415) already
    return request.get_data(cache=True), "(body)", "(body)"


INTENT_DESCRIPTION = ("Bombora's Company Surge shape: domain, company name, topic, composite score (0 to 100) "
                      "and week (YYYY-MM-DD), UTF-8; an optional provider column (bombora otherwise). Each "
                      "good row becomes an intent event of the account with that domain, keyed by provider, "
                      "domain, topic and week (a week imported twice counts once: `unchanged`); rows with "
                      "a bad cell are rejected and listed by row and column in the report. "
                      "See docs/identification.md.")


def _start(kind: str):
    data, filename, path = _data()
    try:
        run = runs.start(kind, data, filename, api_user().id)
    except service.ImportFileError as exc:
        raise ApiError(422, str(exc), [{"path": path, "message": str(exc)}]) from None
    return jsonify(runs.serialize(run)), 202, {"Location": url_for("api.get_import", run_id=run.id)}


@bp.post("/imports/accounts")
@operation("Import accounts from a CSV file (upsert by domain), as a job", roles=MANAGERS,
           request_body=CSV_BODY, responses=RESPONSES, description=DESCRIPTION, tags=["imports"])
def import_accounts():
    return _start("accounts")


@bp.post("/imports/contacts")
@operation("Import contacts from a CSV file (upsert by email, linked to accounts by CRM id or domain), "
           "as a job", roles=MANAGERS, request_body=CSV_BODY, responses=RESPONSES, description=DESCRIPTION,
           tags=["imports"])
def import_contacts():
    return _start("contacts")


@bp.post("/imports/intent")
@operation("Import third-party intent from a Company Surge CSV file (one row per company, topic and week), "
           "as a job", roles=MANAGERS, request_body=CSV_BODY, responses=RESPONSES,
           description=INTENT_DESCRIPTION, tags=["imports"])
def import_intent():
    return _start("intent")


@bp.get("/imports/<int:run_id>")
@operation("An import run: its status, progress and, once done, its report", roles=MANAGERS,
           responses={200: ("The import run", RUN)}, tags=["imports"])
def get_import(run_id):
    run = runs.get(run_id)
    if run is None:
        raise NotFound("no such import")
    return jsonify(runs.serialize(run))


@bp.get("/imports")
@operation("The latest import runs, newest first", roles=MANAGERS,
           query={"limit": {"type": "integer", "minimum": 1, "maximum": runs.HISTORY_LIMIT,
                            "default": 20, "description": "how many runs"}},
           responses={200: ("The latest import runs", {"type": "object", "required": ["items"],
                                                        "properties": {"items": {"type": "array",
                                                                                 "items": RUN}}})},
           tags=["imports"])
def list_imports(query):
    return jsonify(items=[runs.serialize(run, actor) for run, actor in runs.history(query.get("limit", 20))])
