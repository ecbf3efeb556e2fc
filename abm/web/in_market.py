"""The admin page of in-market data: account identification, intent and ICP fit, with
the fit model's cross-validated AUC and calibration."""

from __future__ import annotations

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm.errors import ValidationError
from abm.services import identification, in_market
from abm.web._access import MANAGERS, role_required

bp = Blueprint("in_market", __name__, url_prefix="/admin")


@bp.route("/in-market", methods=["GET", "POST"])
@role_required(*MANAGERS)
def page():
    errors, status = [], 200
    texts = None
    if request.method == "POST":
        if current_user.role != "admin":
            abort(403)
        texts = {key: request.form[key] for key in in_market.EDITABLE if key in request.form}
        try:
            in_market.update_settings(texts, current_user.id)
            flash("In-market settings saved.", "success")
            return redirect(url_for("in_market.page"))
        except ValidationError as exc:
            errors, status = exc.details, 422
    data = in_market.overview()
    texts = {key: json.dumps(value, indent=2) for key, value in data["settings"].items()} | (texts or {})
    return render_template("web/admin/in_market.html", data=data, texts=texts, errors=errors,
                           can_edit=current_user.role == "admin",
                           lookup_address_days=identification.lookup_address_days()), status
