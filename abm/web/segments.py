"""The segment pages: the list with live counts, one segment (its members with their
reasons, paged; CSV), and the form that saves one. Everything goes through
:mod:`abm.services.segments`, as the API does."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm.errors import ApiError
from abm.services import segments as service
from abm.web._access import MANAGERS, role_required

bp = Blueprint("segments", __name__)

STARTER = "tier: [1]\nstage: {not_in: [customer]}\n"


def _may_manage() -> bool:
    return current_user.role in MANAGERS


@bp.get("/segments")
@role_required()
def index():
    return render_template("web/segments/list.html", items=service.listing(), may_manage=_may_manage())


def _form(name: str = "", source: str = STARTER, description: str = "", errors=None, status: int = 200,
          existing: bool = False):
    return render_template("web/segments/form.html", name=name, source=source, description=description,
                           errors=errors or [], existing=existing), status


@bp.get("/segments/_new")
@role_required(*MANAGERS)
def new():
    return _form()


@bp.post("/segments/_save")
@role_required(*MANAGERS)
def save():
    name = (request.form.get("name") or "").strip()[:100]
    source = (request.form.get("condition") or "").replace("\r\n", "\n")[:service.MAX_SOURCE]
    description = (request.form.get("description") or "")[:2000]
    try:
        row, created = service.save(name, source, description, current_user.id)
    except service.SegmentInvalid as exc:
        return _form(name, source, description, [f"{e.line}:{e.column} {e.path}: {e.message}" for e in exc.errors],
                     422)
    except ApiError as exc:
        return _form(name, source, description, [d.get("message", exc.message) for d in exc.details] or
                     [exc.message], 422)
    flash(f"Segment {row.name} {'created' if created else 'saved'}.", "success")
    return redirect(url_for("segments.show", name=row.name))


@bp.get("/segments/<name>")
@role_required()
def show(name: str):
    row = service.get(name)
    members, cursor = service.members(name, request.args.get("cursor"), 50)
    return render_template("web/segments/show.html", row=row, summary=service.serialize(row, service.count(row)),
                           members=members, next_cursor=cursor, may_manage=_may_manage())


@bp.get("/segments/<name>/edit")
@role_required(*MANAGERS)
def edit(name: str):
    row = service.get(name)
    return _form(row.name, row.source, row.description or "", existing=True)


@bp.get("/segments/<name>/members.csv")
@role_required()
def members_csv(name: str):
    return Response(service.export_csv(name), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="segment-{name}.csv"'})
