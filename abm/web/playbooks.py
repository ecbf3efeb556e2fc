"""The playbook pages: the list, a playbook's page (life cycle, versions, enrollments,
funnel, touches, failures), its enrollments (by state, or those that reached a step: what
each count of the page opens; CSV) and the editor (validate, plan, apply).

Everything goes through :mod:`abm.services.playbooks`, as the API does, and the
read-only aggregates the pages draw (counts per state, per step, per status, the
latest failures) through :mod:`abm.services.playbook_reads`.

URLs: editor pages start with ``_`` (``/playbooks/_new``, ``/playbooks/_check``,
``/playbooks/_apply``) because a playbook key can never contain one, so no key shadows
them. AEs may read and plan; applying and the life cycle need a manager or an admin.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from abm.errors import ApiError
from abm.models import Playbook as PlaybookRow
from abm.models.playbook import ENROLLMENT_STATES, PLAYBOOK_STATUSES, TOUCH_STATUSES
from abm.services import change_control, playbook_reads, touch_search, variant_results
from abm.services import playbooks as service
from abm.web._access import MANAGERS, role_required
from playbooks import flow
from playbooks.errors import PlaybookError
from playbooks.loader import MAX_SOURCE_BYTES

bp = Blueprint("playbooks", __name__)

LIFE_CYCLE = {
    "activate": "activated", "pause": "paused", "resume": "resumed", "archive": "archived",
}
#: The per-step results table: (label, "status" or "result", its value), in order.
RESULT_COLUMNS = (("sent", "status", "sent"), ("delivered", "result", "delivered"), ("opened", "result", "opened"),
                  ("clicked", "result", "clicked"), ("replied", "result", "replied"),
                  ("bounced", "result", "bounced"), ("suppressed", "status", "suppressed"),
                  ("postponed", "status", "scheduled"), ("failed", "status", "failed"),
                  ("skipped", "status", "skipped"))
#: Enrollments per page of a playbook's enrollments list.
ENROLLMENTS_PAGE = 50
#: The life-cycle buttons each status offers, in order.
ACTIONS_BY_STATUS = {
    "draft": ("activate", "archive"),
    "active": ("pause", "archive"),
    "paused": ("resume", "archive"),
    "archived": (),
}
STARTER = """version: 1
key: my-playbook
name: My playbook
audience:
  where:
    tier: [1]
steps:
  - id: intro
    email:
      to: {roles: [decision_maker]}
      subject: "{{ account.name }} and you"
      body: "<p>Hi {{ contact.first_name or 'there' }},</p>"
"""


def may_manage() -> bool:
    return current_user.role in MANAGERS


# -- the list -------------------------------------------------------------------------


@bp.get("/playbooks")
@role_required()
def index():
    status = request.args.get("status") or None
    if status not in (None, *PLAYBOOK_STATUSES):
        status = None
    return render_template("web/playbooks/list.html", rows=playbook_reads.listing(status),
                           counts=playbook_reads.enrollment_counts(), status=status,
                           by_status=playbook_reads.status_counts(), statuses=PLAYBOOK_STATUSES,
                           may_manage=may_manage())


# -- one playbook ---------------------------------------------------------------------


@bp.get("/playbooks/<key>")
@role_required()
def show(key: str):
    row = service.get(key)
    summary = service.serialize(row)
    pb = service.compiled(service.current_version(row))
    enrollments = [{"label": state.replace("_", " "), "value": summary["enrollments"].get(state, 0),
                    "href": _enrollments_url(key, state=state) if summary["enrollments"].get(state) else None}
                   for state in ENROLLMENT_STATES]
    reached = [{**r, "href": _enrollments_url(key, reached=r["label"]) if r["value"] else None}
               for r in playbook_reads.funnel(row, pb.steps)]
    touch_counts = service.touch_counts(key)
    touches = [{"label": status, "value": touch_counts.get(status, 0),
                "href": url_for("touches.index", playbook=key, status=status) if touch_counts.get(status) else None}
               for status in TOUCH_STATUSES]
    results = touch_search.step_results(row.id)
    return render_template(
        "web/playbooks/show.html", row=row, pb=pb, summary=summary, enrollments=enrollments,
        enrolled_total=sum(e["value"] for e in enrollments), funnel=reached,
        flow_steps=[{"id": s.id, "label": flow.label(s), "count": r["value"], "href": r["href"]}
                    for s, r in zip(pb.steps, reached, strict=True)],
        flow_edges=[vars(edge) for edge in flow.edges(pb)],
        touches=touches, touches_total=sum(t["value"] for t in touches), failures=playbook_reads.failures(row),
        versions=playbook_reads.version_history(row), actions=ACTIONS_BY_STATUS.get(row.status, ()), may_manage=may_manage(),
        migration=service.migration_preview(key) if row.status != "archived" else [],
        email_steps=[s.id for s in pb.steps if s.kind == "email"], results=results,
        result_columns=RESULT_COLUMNS, ab=variant_results.of_playbook(pb, results),
        ab_method=variant_results.METHOD)


def _enrollments_url(key: str, **args) -> str:
    return url_for("playbooks.enrollments", key=key, **args)


@bp.get("/playbooks/<key>/enrollments")
@role_required()
def enrollments(key: str):
    """The enrollments behind a count of the playbook's page: those in ``state``, those
    that reached the step ``reached`` (the funnel's and the flow's counts, by the same
    rule), paged; ``format=csv`` gives them all as a file."""
    row = service.get(key)
    state = request.args.get("state") if request.args.get("state") in ENROLLMENT_STATES else None
    reached = (request.args.get("reached") or "")[:100] or None
    if request.args.get("format") == "csv":
        name = "-".join(filter(None, (key, "enrollments", state, reached and f"reached-{reached}")))
        return Response(playbook_reads.enrollments_csv(row, state, reached), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    items, cursor = playbook_reads.enrollments_page(row, state, request.args.get("cursor"), ENROLLMENTS_PAGE,
                                                    reached=reached)
    args = {k: v for k, v in (("state", state), ("reached", reached)) if v}
    subject = (f"Accounts that reached {reached}" if reached else "Enrollments") + (
        f" ({state.replace('_', ' ')})" if state else "")
    return render_template("web/playbooks/enrollments.html", row=row, subject=subject, items=items, next_cursor=cursor, args=args,
                           state=state, reached=reached, first_page=not request.args.get("cursor"),
                           csv_url=_enrollments_url(key, format="csv", **args), states=ENROLLMENT_STATES,
                           steps=[s.id for s in service.compiled(service.current_version(row)).steps])


@bp.get("/playbooks/<key>/diff")
@role_required()
def diff(key: str):
    row = service.get(key)
    old = request.args.get("from", type=int) or max(row.current_version - 1, 1)
    result = change_control.diff(key, old, request.args.get("to", type=int))
    return render_template("web/playbooks/diff.html", row=row, diff=result, may_manage=may_manage())


@bp.post("/playbooks/<key>/migrate")
@role_required(*MANAGERS)
def migrate(key: str):
    result = service.migrate(key)
    flash(f"{result['moved']} running enrollment(s) moved to version {result['version']}.", "success")
    return redirect(url_for("playbooks.show", key=key))


@bp.post("/playbooks/<key>/clone")
@role_required(*MANAGERS)
def clone(key: str):
    new_key = (request.form.get("new_key") or "").strip()[:100]
    try:
        row, _ = change_control.clone(key, new_key, (request.form.get("name") or "").strip()[:200] or None,
                                      actor_id=current_user.id)
    except service.PlaybookInvalid as exc:
        flash(f"Could not clone {key} as {new_key!r}: " + "; ".join(e.message for e in exc.errors), "error")
        return redirect(url_for("playbooks.show", key=key))
    except ApiError as exc:
        flash(f"Could not clone {key}: {exc.message}.", "error")
        return redirect(url_for("playbooks.show", key=key))
    flash(f"Stored {row.key} as a copy of {key}, a draft.", "success")
    return redirect(url_for("playbooks.show", key=row.key))


@bp.post("/playbooks/<key>/test-send")
@role_required(*MANAGERS)
def test_send(key: str):
    form = request.form
    try:
        result = change_control.test_send(key, (form.get("step") or "")[:100], current_user.email,
                                          (form.get("account") or "")[:255], (form.get("contact") or "")[:320] or None,
                                          variant=(form.get("variant") or "")[:64] or None)
    except ApiError as exc:
        flash(f"Could not send a test: {exc.message}.", "error")
        return redirect(url_for("playbooks.show", key=key))
    flash(f"A test of {form.get('step')} ({result['subject']}), rendered for {result['contact']} at "
          f"{result['account']}, is on its way to {result['to']}.", "success")
    return redirect(url_for("playbooks.show", key=key))


@bp.get("/playbooks/<key>/versions/<int:number>")
@role_required()
def version(key: str, number: int):
    row = service.get(key)
    found = service.source_of(key, number)
    return render_template("web/playbooks/version.html", row=row, version=found,
                           lines=found.source.splitlines() or [""], may_manage=may_manage())


def _schedule_of(text: str | None) -> dict:
    """The plan's ``account``/``contact`` from one box: an email names a contact."""
    text = (text or "").strip()[:320]
    if not text:
        return {}
    return {"contact": text} if "@" in text else {"account": text}


@bp.get("/playbooks/<key>/plan")
@role_required()
def plan(key: str):
    """The dry run of the current version (or ``?version=N``), from the playbook's page."""
    row = service.get(key)
    found = service.source_of(key, request.args.get("version", type=int))
    schedule_of = request.args.get("schedule_of")
    move = request.args.get("migrate") == "1"  # as "Move them to version N" would, first
    result = service.plan(found.source, f"{key}.yaml", migrate=move, **_schedule_of(schedule_of))
    return render_template("web/playbooks/plan.html", row=row, version=found, plan=result,
                           schedule_of=schedule_of or "", migrate=move, may_manage=may_manage())


@bp.post("/playbooks/<key>/<any(activate, pause, resume, archive):action>")
@role_required(*MANAGERS)
def life_cycle(key: str, action: str):
    try:
        if action == "activate":
            result = service.activate(key, allow_empty=request.form.get("allow_empty") == "1")
        else:
            result = getattr(service, action)(key)
    except service.EmptyAudience as exc:
        return render_template("web/playbooks/confirm_empty.html", row=service.get(key), message=exc.message,
                               funnel=exc.funnel), 409
    except ApiError as exc:
        if exc.status == 404:
            raise
        flash(f"Could not {action} {key}: {exc.message}.", "error")
        return redirect(url_for("playbooks.show", key=key))
    message = f"Playbook {key} {LIFE_CYCLE[action]}."
    if action == "activate" and "enrolled" in result:
        message += f" {result['enrolled']} account(s) enrolled"
        if result.get("held_out"):
            message += f", {result['held_out']} held out"
        message += "."
    elif action == "resume":
        message += f" {result.get('requeued', 0)} queued touch(es) sent on their way again."
    elif action == "archive":
        message += (f" {result.get('exited', 0)} running enrollment(s) ended, "
                    f"{result.get('skipped_touches', 0)} unsent touch(es) skipped.")
    flash(message, "success")
    return redirect(url_for("playbooks.show", key=key))


# -- the editor -----------------------------------------------------------------------


def _editor(source: str, *, status: int = 200, errors=None, checked: bool = False, plan=None,
            valid=None, existing: PlaybookRow | None = None, based_on: str | None = None,
            schedule_of: str | None = None, migrate: bool = False):
    lines = source.split("\n")
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()
    error_lines = sorted({e.line for e in errors or []})
    return render_template(
        "web/playbooks/editor.html", source=source, line_count=len(lines), errors=errors or [],
        error_lines=error_lines, checked=checked, plan=plan, valid=valid, existing=existing, based_on=based_on,
        may_manage=may_manage(), schedule_of=schedule_of, migrate=migrate,
    ), status


def _filename(source_key: str | None) -> str:
    return f"{source_key}.yaml" if source_key else "playbook.yaml"


def _posted_source() -> str:
    source = (request.form.get("source") or "").replace("\r\n", "\n")
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        abort(413, description=f"a playbook may be at most {MAX_SOURCE_BYTES // 1024} KiB")
    return source


@bp.get("/playbooks/_new")
@role_required()
def new():
    return _editor(STARTER)


@bp.get("/playbooks/<key>/edit")
@role_required()
def edit(key: str):
    row = service.get(key)
    number = request.args.get("version", type=int)
    found = service.source_of(key, number)
    return _editor(found.source, existing=row, based_on=f"version {found.version}")


@bp.post("/playbooks/_check")
@role_required()
def check():
    """Validate, or plan (the dry run): both store nothing, so every role may."""
    source = _posted_source()
    action = request.form.get("action", "validate")
    if not source.strip():
        return _editor(source, status=422, checked=True, errors=[_empty_error()])
    plan = None
    schedule_of = request.form.get("schedule_of")
    move = request.form.get("migrate") == "1"  # the plan with the running enrollments moved to this version
    if action == "plan":  # the plan validates too, within its own time limit
        try:
            plan = service.plan(source, "playbook.yaml", migrate=move, **_schedule_of(schedule_of))
        except service.PlaybookInvalid as exc:
            return _editor(source, status=422, checked=True, errors=exc.errors, migrate=move)
        key, name, steps = plan["key"], plan["name"], len(plan["steps"])
    else:
        result = service.validate(source, "playbook.yaml")
        if result.errors:
            return _editor(source, status=422, checked=True, errors=result.errors)
        key, name, steps = result.playbook.key, result.playbook.name, len(result.playbook.steps)
    existing = playbook_reads.find(key)
    valid = {"key": key, "name": name, "steps": steps, "next_version": (existing.current_version + 1) if existing else 1}
    return _editor(source, checked=True, plan=plan, valid=valid, existing=existing, schedule_of=schedule_of,
                   migrate=move)


@bp.post("/playbooks/_apply")
@role_required(*MANAGERS)
def apply():
    source = _posted_source()
    if not source.strip():
        return _editor(source, status=422, checked=True, errors=[_empty_error()])
    try:
        row, number = service.apply(source, "playbook.yaml", actor_id=current_user.id)
    except service.PlaybookInvalid as exc:
        return _editor(source, status=422, checked=True, errors=exc.errors)
    flash(f"Stored version {number} of {row.key}." + (
        " It is a draft: activate it to enroll accounts." if row.status == "draft" else
        " New enrollments use it; running ones finish on the version they started on."), "success")
    return redirect(url_for("playbooks.show", key=row.key))


def _empty_error():
    return PlaybookError("playbook.yaml", 1, 1, "playbook", "the playbook is empty; paste or write its YAML")
