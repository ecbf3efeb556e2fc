"""The import page: upload an accounts, contacts or intent (Company Surge) CSV; a worker imports it
while the page shows its progress, then its row-level report; the history of past imports and a
sample file of each kind."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from abm.services.imports import ImportFileError, runs
from abm.web._access import MANAGERS, role_required

bp = Blueprint("imports", __name__)

KINDS = runs.KINDS


def _form(kind: str, errors: dict | None = None, filename: str | None = None, status: int = 200):
    return render_template("web/imports.html", kind=kind if kind in KINDS else "accounts", errors=errors,
                           filename=filename, history=runs.history()), status


@bp.route("/imports", methods=["GET", "POST"])
@role_required(*MANAGERS)
def index():
    kind = request.values.get("kind", "accounts")
    if request.method == "GET":
        return _form(kind)
    errors: dict[str, list[str]] = {}
    upload = request.files.get("file")
    if kind not in KINDS:
        errors["kind"] = [f"choose accounts, contacts or intent, not {kind!r}"]
        kind = "accounts"
    if upload is None or not upload.filename:
        errors["file"] = ["choose a CSV file to upload"]
    if errors:
        return _form(kind, errors, status=422)
    try:
        run = runs.start(kind, upload.stream.read(), upload.filename, current_user.id)
    except ImportFileError as exc:
        return _form(kind, {"file": [f"{upload.filename}: {exc}"]}, upload.filename, 422)
    return redirect(url_for("imports.show", run_id=run.id), 303)


@bp.get("/imports/<int:run_id>")
@role_required(*MANAGERS)
def show(run_id: int):
    run = runs.get(run_id) or abort(404)
    return render_template("web/import_run.html", run=runs.serialize(run))


@bp.get("/imports/<int:run_id>/status")
@role_required(*MANAGERS)
def status(run_id: int):
    """What the run's page polls while the import is queued or running."""
    run = runs.get(run_id) or abort(404)
    return jsonify({k: v for k, v in runs.serialize(run).items() if k != "report"})


@bp.get("/imports/sample/<kind>.csv")
@role_required(*MANAGERS)
def sample(kind: str):
    if kind not in KINDS:
        abort(404)
    return Response(runs.sample(kind), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="sample-{kind}.csv"'})
