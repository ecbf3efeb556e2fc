"""The dry run of a playbook: its audience funnel, then the engine simulated over the
real audience (``abm.services.simulation``), summed up per step, channel and reason.

What is real: the audience and its eligibility (earlier enrollments, re-entry, the
limit), the holdout, the accounts' facts today (fields, contacts, suppressions, recent
events), the workspace's and the playbooks' caps counted over the touches already
stored and over the touches the other active playbooks' running enrollments on the same
accounts will make, send windows in each account's time zone, and the templates.

What is assumed is said in the answer (``assumptions``), and the steps whose counts
depend on engagement that has not happened yet are marked (``depends_on_engagement``).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select

from abm.db import db, in_list
from abm.models import Account, Contact, Enrollment
from abm.models import Playbook as PlaybookRow
from abm.services import audience, enrollment, migration, simulation, touches
from abm.services.audience_funnel import funnel
from abm.services.simulation import Ledger, Runner, horizon_of, simulate
from playbooks import duration, flow, sandbox, variants
from playbooks.conditions import Activity, FieldMatch, walk
from playbooks.holdout import is_held_out
from playbooks.machine import ACTIVE, EnrollmentState
from playbooks.model import Playbook

ASSUMPTIONS = (
    "nobody engages from now on (no opens, clicks, replies or visits): conditions waiting "
    "for engagement take their 'no' side, so the steps marked as depending on engagement "
    "are what happens if nobody engages",
    "no stage is moved by the CRM or by a person; stages the playbooks set are followed",
    "every send succeeds (no bounce, no provider failure)",
    "accounts that start to match later, and trigger entries, are not counted",
)
#: How a touch row's status reads in the plan.
EXPECTED = {"queued": "sends", "scheduled": "postponed", "suppressed": "suppressed", "failed": "fails",
            "skipped": "skipped"}
ENGAGEMENT_FIELDS = ("score", "engagement")
POSTPONED_BY_WINDOW = "outside the send window"
#: Bounded work: the most entering accounts simulated. A larger audience is simulated
#: on an evenly spread sample of this size, and the plan says so (``simulated``).
MAX_SIMULATED_ACCOUNTS = 2_000


def reads_engagement(condition) -> bool:
    """Whether a condition's truth may change with engagement still to come."""
    return condition is not None and any(
        isinstance(node, Activity) or (isinstance(node, FieldMatch) and node.field in ENGAGEMENT_FIELDS)
        for node in walk(condition))


def engagement_dependent_steps(pb: Playbook) -> set[str]:
    """The steps whose counts depend on future engagement: every step from the first one
    whose condition (``when``, ``wait_until``, ``branch``) reads engagement, and all of
    them when ``exit_when`` does."""
    if reads_engagement(pb.exit_when):
        return {step.id for step in pb.steps}
    for step in pb.steps:
        if reads_engagement(step.when) or reads_engagement(getattr(step, "condition", None)):
            return {later.id for later in pb.steps[step.index:]}
    return set()


def report(pb: Playbook, now: datetime, compiled_of, *, account: str | None = None, contact: str | None = None,
           sample: int = 5, migrate: bool = False, where: tuple[str, list[int]] = ("playbook.yaml", [])) -> dict:
    """The plan of ``pb`` at ``now``. ``compiled_of(version_id)`` gives a stored
    version's compiled playbook; ``account`` (id or domain) or ``contact`` (email) asks
    for that one's schedule; ``migrate``: the playbook's running enrollments move to
    ``pb`` first (``apply --migrate``), and the mapping is in ``migration``. ``where``:
    the source's file name and its steps' lines, for a limit's message."""
    row = db.session.execute(select(PlaybookRow).where(PlaybookRow.key == pb.key)).scalar_one_or_none()
    entering, held, steps_funnel = _audience(row, pb, now)
    simulated = _spread(entering, MAX_SIMULATED_ACCOUNTS)
    moving = _moving(row, pb, compiled_of, now) if migrate and row is not None else []
    background = _background(simulated + [r.account_id for r in moving], compiled_of, now, {r.id for r in moving})
    runners = _foreground(row, pb, simulated, now) + moving + background
    foreground = [r for r in runners if r.foreground]
    facts = _facts(runners, now)
    outcome = simulate(runners, facts, _ledger(runners, facts, now), now, now + horizon_of(pb))
    rows = [r for r in outcome.rows if r["foreground"]]
    return {
        "key": pb.key, "name": pb.name, "now": now.isoformat(), "simulated_until": outcome.stopped_at.isoformat(),
        "entering": len(entering), "simulated": len(simulated), "held_out": held, "funnel": steps_funnel,
        "sample": _sample_accounts(entering[:sample]), "steps": _steps(pb, rows, foreground),
        "channels": _channels(rows), "outcomes": _outcomes(foreground), "other_enrollments": len(background),
        "migration": migration.mapping(row, pb, None, compiled_of) if migrate else None, "moving": len(moving),
        "schedule": _schedule(rows, facts, account, contact), "rendered": _rendered(pb, outcome.samples, rows, facts),
        "warnings": _warnings(pb, steps_funnel, entering, simulated, rows, outcome.cut_short) + _cut_short(pb, outcome, where),
        "limit": _limit(pb, outcome, where), "assumptions": list(ASSUMPTIONS),
        "flow": [vars(edge) for edge in flow.edges(pb)],
    }


def _spread(ids: list[int], most: int) -> list[int]:
    """``ids`` when there are at most ``most``, else ``most`` of them evenly spread."""
    if len(ids) <= most:
        return ids
    return [ids[len(ids) * n // most] for n in range(most)]


def _audience(row: PlaybookRow | None, pb: Playbook, now: datetime) -> tuple[list[int], int, list[dict]]:
    """(the accounts entering, how many are held out, the audience funnel)."""
    entrants = enrollment.would_enroll(row, pb, now)
    held = {i for i in entrants if is_held_out(pb.key, i, pb.holdout)}
    eligible = len(enrollment.would_enroll(row, pb, now, limited=False)) if row is not None else None
    return [i for i in entrants if i not in held], len(held), funnel(pb, now, eligible, len(entrants), len(held))


def _facts(runners: list[Runner], now: datetime) -> dict:
    conditions = [c for r in runners for c in _conditions(r.playbook)]
    return audience.load_facts({r.account_id for r in runners}, now, audience.longest_window(conditions))


def _ledger(runners: list[Runner], facts: dict, now: datetime) -> Ledger:
    """The stored touches of these accounts that any cap involved may count."""
    ledger = Ledger()
    caps = [cap for r in runners for cap in r.playbook.caps] + touches.workspace_caps()
    longest_cap = max((cap.within for cap in caps), default=timedelta(0))
    ledger.load_stored(sorted(facts), now - max(longest_cap, timedelta(days=30)))
    return ledger


def _channels(rows: list[dict]) -> dict[str, int]:
    return dict(Counter(r["channel"] for r in rows if r["status"] in ("queued", "scheduled")))


def _conditions(pb: Playbook):
    yield pb.exit_when
    for step in pb.steps:
        yield step.when
        yield getattr(step, "condition", None)


def _foreground(row: PlaybookRow | None, pb: Playbook, entering: list[int], now: datetime) -> list[Runner]:
    """The enrollments activation would make; ids after every stored one, in account
    order, as the INSERT makes them (the dispatcher breaks ties by id)."""
    first = (db.session.execute(select(func.max(Enrollment.id))).scalar_one() or 0) + 1
    playbook_id = row.id if row is not None else 0
    priority = row.priority if row is not None else pb.priority
    return [Runner(first + n, playbook_id, priority, pb, account_id, EnrollmentState(0, ACTIVE, now))
            for n, account_id in enumerate(entering)]


def _moving(row: PlaybookRow, pb: Playbook, compiled_of, now: datetime) -> list[Runner]:
    """The playbook's running enrollments, moved to ``pb`` as a migration would."""
    rows = db.session.execute(select(Enrollment).where(
        Enrollment.playbook_id == row.id, Enrollment.state.in_(enrollment.RUNNING))).scalars()
    out = []
    for e in rows:
        state = EnrollmentState(e.step_index, e.state, e.next_run_at, e.wait_started_at)
        moved = migration.moved_state(compiled_of(e.version_id), pb, state, now)
        out.append(Runner(e.id, row.id, row.priority, pb, e.account_id, moved))
    return out


def _background(account_ids: list[int], compiled_of, now: datetime, moving: set[int]) -> list[Runner]:
    """The running enrollments of active playbooks on these accounts (but those in
    ``moving``): their touches take the same contacts' and accounts' cap slots."""
    if not account_ids:
        return []
    rows = db.session.execute(
        select(Enrollment, PlaybookRow.priority).join(PlaybookRow, PlaybookRow.id == Enrollment.playbook_id)
        .where(in_list(Enrollment.account_id, account_ids), Enrollment.state.in_(enrollment.RUNNING),
               PlaybookRow.status == "active")).all()
    out = []
    for e, priority in rows:
        if e.id in moving:
            continue
        state = EnrollmentState(e.step_index, e.state, max(e.next_run_at or now, now), e.wait_started_at)
        out.append(Runner(e.id, e.playbook_id, priority, compiled_of(e.version_id), e.account_id, state,
                          foreground=False))
    return out


def _sample_accounts(ids: list[int]) -> list[dict]:
    rows = db.session.execute(select(Account.id, Account.name, Account.domain).where(
        Account.id.in_(ids or [0])).order_by(Account.id)).all()
    return [{"id": r.id, "name": r.name, "domain": r.domain} for r in rows]


def _steps(pb: Playbook, rows: list[dict], runners: list[Runner]) -> list[dict]:
    dependent = engagement_dependent_steps(pb)
    by_step: dict[str, list[dict]] = {step.id: [] for step in pb.steps}
    for row in rows:
        by_step[row["step_id"]].append(row)
    out, offset = [], timedelta(0)
    for step in pb.steps:
        mine = by_step[step.id]
        item = {"id": step.id, "kind": step.kind, "label": flow.label(step), "channel": step.channel,
                "after": "at once" if not offset else f"after {duration.format(offset)}",
                "reached": sum(1 for r in runners if step.index in r.visited),
                "depends_on_engagement": step.id in dependent}
        if step.makes_touches:
            item["touches"] = sum(1 for r in mine if r["status"] in ("queued", "scheduled"))
            if getattr(step, "variants", ()):
                item["variants"] = _variants(step, mine)
            item["postponed"] = _reasons(mine, "scheduled", POSTPONED_BY_WINDOW)
            item["suppressed"] = _reasons(mine, "suppressed")
            item["failed"] = _reasons(mine, "failed")
        item["skipped"] = sum(1 for r in mine if r["status"] == "skipped")
        if step.kind == "wait":
            offset += step.duration
        elif step.kind == "wait_until":
            item["timeout"] = f"after {duration.format(step.timeout)}"
        out.append(item)
    return out


def _variants(step, rows: list[dict]) -> list[dict]:
    """An email step's A/B variants: each one's share by weight and the touches it is
    expected to send (and to have suppressed), from the contacts' stable assignment."""
    shares = variants.shares(step.variants)
    return [{"name": v.name, "share": shares[v.name], "overrides": list(v.overrides),
             "touches": sum(1 for r in rows if r["variant"] == v.name and r["status"] in ("queued", "scheduled")),
             "suppressed": sum(1 for r in rows if r["variant"] == v.name and r["status"] == "suppressed")}
            for v in step.variants]


def _reasons(rows: list[dict], status: str, default: str = "") -> dict[str, int]:
    return dict(Counter((r["error"] or default) for r in rows if r["status"] == status))


def _outcomes(runners: list[Runner]) -> dict[str, int]:
    counts = Counter()
    for runner in runners:
        state = runner.state
        counts[f"{state.status}: {state.exit_reason}" if state.finished else "still running"] += 1
    return dict(counts)


def _contact_emails(facts) -> dict[int, str]:
    return {c["id"]: c.get("email") for f in facts.values() for c in f.contacts}


def _schedule(rows: list[dict], facts, account: str | None, contact: str | None) -> dict | None:
    """The simulated touches of one account (id or domain) or one contact (email)."""
    if not account and not contact:
        return None
    emails = _contact_emails(facts)
    if contact:
        wanted = db.session.execute(select(Contact.id, Contact.account_id).where(
            Contact.email == contact.strip().lower())).first()
        chosen = [r for r in rows if wanted and r["contact_id"] == wanted.id]
        subject = {"contact": contact, "found": wanted is not None}
    else:
        account_id = _account_id(account)
        chosen = [r for r in rows if r["account_id"] == account_id]
        subject = {"account": account, "found": account_id is not None}
    items = [{"at": r["due_at"].isoformat(), "step": r["step_id"], "variant": r["variant"],
              "channel": r["channel"],
              "expected": EXPECTED.get(r["status"], r["status"]), "contact": emails.get(r["contact_id"]),
              "reason": r["error"] or (POSTPONED_BY_WINDOW if r["status"] == "scheduled" else None)}
             for r in sorted(chosen, key=lambda r: (r["due_at"], r["step_index"]))]
    return {**subject, "touches": items}


def _account_id(account: str) -> int | None:
    text = account.strip()
    if text.isdigit():
        return db.session.execute(select(Account.id).where(Account.id == int(text))).scalar_one_or_none()
    return db.session.execute(select(Account.id).where(Account.domain == text.lower())).scalar_one_or_none()


def _rendered(pb: Playbook, samples: dict, rows: list[dict], facts) -> list[dict]:
    """One rendered touch per touch step, and per A/B variant of an email step, as the
    engine rendered it for a real account and contact."""
    emails = _contact_emails(facts)
    out = []
    for step in pb.steps:
        if not step.makes_touches:
            continue
        for variant in [v.name for v in getattr(step, "variants", ())] or [None]:
            named = {"step": step.id, **({"variant": variant} if variant else {})}
            found = samples.get((step.id, variant))
            if found:
                out.append({**named, "account": facts[found["account_id"]].fields["domain"],
                            "contact": emails.get(found["contact_id"]),
                            "rendered": touches.with_placeholder_links(found["payload"])})
                continue
            failure = next((r["error"] for r in rows if r["step_id"] == step.id and r["variant"] == variant
                            and r["status"] == "failed"), None)
            if failure:
                out.append({**named, "rendered": None, "error": failure})
            else:
                nobody = "contact gets this variant" if variant else "account reaches this step"
                out.append({**named, "rendered": None, "note": f"no {nobody} to render it for"})
    return out


def _warnings(pb: Playbook, steps_funnel: list[dict], entering: list[int], simulated: list[int],
              rows: list[dict], cut_short: bool) -> list[str]:
    warnings = []
    if pb.trigger is not None:
        warnings.append(f"entry by trigger ({pb.trigger.on}): accounts enter when it fires, none now")
    elif not entering:
        zero = next((f for f in steps_funnel if f["kept"] == 0), None)
        warnings.append("no account would enter" + (f": none is left after \u201c{zero['label']}\u201d" if zero else ""))
    touched = {r["account_id"] for r in rows if r["status"] in ("queued", "scheduled")}
    warnings += _sampled(entering, simulated)
    untouched = len([i for i in simulated if i not in touched])
    if simulated and untouched and not cut_short and any(step.makes_touches for step in pb.steps):
        warnings.append(f"{untouched} entering account(s) would get no touch at all")
    capped = sum(1 for r in rows if r["status"] == "suppressed" and (r["error"] or "").startswith("capped"))
    if capped:
        warnings.append(f"{capped} touch(es) would be capped by frequency caps")
    return warnings


def _sampled(entering: list[int], simulated: list[int]) -> list[str]:
    if len(simulated) == len(entering):
        return []
    return [f"{len(simulated):,} of the {len(entering):,} entering accounts are simulated, evenly spread (the "
            f"plan simulates at most {MAX_SIMULATED_ACCOUNTS:,} accounts: account limit); the step, channel and "
            f"outcome counts are theirs, about 1/{len(entering) / len(simulated):.0f} of the whole audience's"]


def _limit(pb: Playbook, outcome, where: tuple[str, list[int]]) -> dict | None:
    """The limit that cut the simulation short, and where: the step most of the planned
    enrollments were on, with its file and line."""
    if not outcome.cut_short:
        return None
    filename, lines = where
    index = outcome.step_index
    seconds = sandbox.deadline_seconds() or simulation.MAX_SECONDS
    return {"limit": outcome.limit,
            "value": f"{seconds:g} s" if outcome.limit == "time" else f"{simulation.MAX_ROUNDS:,} instants",
            "stopped_at": outcome.stopped_at.isoformat(), "file": filename,
            "step": pb.steps[index].id if index is not None and index < len(pb.steps) else None,
            "line": lines[index] if index is not None and index < len(lines) else None}


def _cut_short(pb: Playbook, outcome, where: tuple[str, list[int]]) -> list[str]:
    limit = _limit(pb, outcome, where)
    if limit is None:
        return []
    step = f" on step '{limit['step']}' ({limit['file']}, line {limit['line']})" if limit["step"] else ""
    what = "time limit: the whole plan" if limit["limit"] == "time" else "instant limit"
    return [f"the simulation stopped at {outcome.stopped_at:%Y-%m-%d %H:%M} UTC{step}: {what} of "
            f"{limit['value']}; this step and later ones are undercounted"]


__all__ = ["report", "reads_engagement", "engagement_dependent_steps", "ASSUMPTIONS"]
