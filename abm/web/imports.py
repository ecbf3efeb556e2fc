"""The import page: upload an accounts or contacts CSV and read the row-level report."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user

from abm.services import imports as import_service
from abm.web._access import MANAGERS, role_required

bp = Blueprint("imports", __name__)

KINDS = {"accounts": import_service.import_accounts, "contacts": import_service.import_contacts}


@bp.route("/imports", methods=["GET", "POST"])
@role_required(*MANAGERS)
def index():
    kind = request.values.get("kind", "accounts")
    if request.method == "GET":
        return render_template("web/imports.html", kind=kind if kind in KINDS else "accounts")
    errors: dict[str, list[str]] = {}
    upload = request.files.get("file")
    if kind not in KINDS:
        errors["kind"] = [f"choose accounts or contacts, not {kind!r}"]
        kind = "accounts"
    if upload is None or not upload.filename:
        errors["file"] = ["choose a CSV file to upload"]
    if errors:
        return render_template("web/imports.html", kind=kind, errors=errors), 422
    try:
        report = KINDS[kind](upload.stream, actor_id=current_user.id)
    except import_service.ImportFileError as exc:
        errors["file"] = [f"{upload.filename}: {exc}"]
        return render_template("web/imports.html", kind=kind, errors=errors, filename=upload.filename), 422
    return render_template("web/imports.html", kind=kind, report=report.to_dict(), filename=upload.filename)
