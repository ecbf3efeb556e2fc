"""Touches: from a step's action to rows, and from rows to a connector, exactly once.

Making touches (the dispatcher calls :func:`build` for a whole batch):

- Recipients: an email goes to the account's contacts whose role is in ``roles`` and
  whose title matches one of ``titles`` (case-insensitive regular expressions), at
  most ``limit`` reachable ones, ordered by the order of ``roles`` then contact id; or
  to the account owner. Alerts and tasks to ``owner`` resolve to the owner's email.
- Suppression: contacts that are unsubscribed, bounced, erased, on the suppression
  list or without an email get a touch row with status ``suppressed`` and the reason
  in ``error`` (never silently dropped).
- Frequency caps: the workspace caps (emails per contact and per account) and the
  playbook's own caps, counted across all playbooks from touches that are
  ``scheduled``, ``queued`` or ``sent`` in the window before the touch's due time. In
  a batch, touches are capped in playbook priority order, so the higher-priority
  playbook gets the slot. A capped touch is postponed (``scheduled``, ``postponed:
  capped: ...``) to the next free slot in the send window, within the step's or the
  playbook's ``max_delay``; with ``on_cap: skip``, or no slot soon enough, it is
  ``suppressed`` (``capped: ...``). The engine's own alerts (level, surge, intent) obey
  the same rules (:func:`schedule_alerts`): the workspace window and ``alerts.cap``.
- Send windows: the playbook's window, else the workspace's in the account's time zone
  (the workspace's zone when the account has none). A touch due outside it is
  ``scheduled`` at the next opening; the dispatcher queues it then.
- A/B variants: an email step with ``variants`` sends each contact the variant
  ``playbooks.variants.assign`` gives it (stable per playbook, step and contact), and
  the touch records its name in ``variant`` (suppressed touches too, so each variant's
  suppressions count).
- Payloads are rendered with ``playbooks.templates.render_touch`` (sandboxed); emails
  get ``unsubscribe_url`` (a signed token of the contact id) and List-Unsubscribe
  headers. A template that fails at run time makes a ``failed`` touch with the reason.

Sending is :mod:`abm.services.delivery` (claim, renew, mark, release, recover); what a
crash can repeat is in ``docs/engine.md``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select, update

from abm import tracking
from abm.db import db, in_list
from abm.models import Playbook as PlaybookRow
from abm.models import Suppression, Touch
from abm.services import settings as settings_service
from playbooks import duration, variants
from playbooks.model import AlertStep, Cap, EmailStep, Playbook, SendWindow, TaskStep
from playbooks.patterns import search_any
from playbooks.templates import TemplateError, render_touch
from playbooks.windows import next_window_opening

COUNTED = ("scheduled", "queued", "sent")


# -- links and hooks -------------------------------------------------------------------


def unsubscribe_url(contact_id: int | str) -> str:
    return tracking.unsubscribe_url(contact_id)


#: What a preview (the dry run) shows instead of a real unsubscribe link.
PLACEHOLDER_UNSUBSCRIBE = "/u/placeholder-not-a-real-link"


def with_placeholder_links(payload: dict) -> dict:
    """A rendered payload as a preview shows it: its real unsubscribe link, a token that
    never expires and unsubscribes a real contact, replaced everywhere (body, text,
    headers) by a placeholder on the same server."""
    real = payload.get("unsubscribe_url") if isinstance(payload, dict) else None
    if not real:
        return payload
    placeholder = real.split("/u/", 1)[0] + PLACEHOLDER_UNSUBSCRIBE

    def swap(value):
        if isinstance(value, str):
            return value.replace(real, placeholder)
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    return swap(payload)


def tracking_for_touch(touch: Touch) -> dict | None:
    """The ``tracking`` payload entry of an email to a contact: the signed open pixel and the
    click template whose token names exactly the links of this email (see abm.tracking).
    Connectors with tracking on add them to the message; others ignore them."""
    if touch.kind != "email" or not touch.contact_id:
        return None
    html = (touch.payload or {}).get("html") or ""
    return {"tracking": tracking.tracking_for_email(touch.id, touch.contact_id, touch.account_id, html)}


# -- recipients ------------------------------------------------------------------------


def suppression_reason(contact: dict, suppressed_hashes: set[str] | None = None) -> str | None:
    if contact.get("erased_at"):
        return "erased"
    if not contact.get("email"):
        return "no email address"
    if contact.get("unsubscribed_at"):
        return "unsubscribed"
    if contact.get("bounced_at"):
        return "bounced"
    if suppressed_hashes and _email_hash(contact["email"]) in suppressed_hashes:
        return "on the suppression list"
    return None


def _email_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def recipients_for(step, facts, suppressed_hashes: set[str] | None = None) -> tuple[list[dict], list[tuple]]:
    """(contacts to touch, [(contact, reason) suppressed]) of an email step for one account.

    Non-email steps: one account-level recipient ``{}`` (or none when ``to: owner`` and
    the account has no owner)."""
    fields = facts.fields
    if not isinstance(step, EmailStep):
        if isinstance(step, (AlertStep, TaskStep)) and step.to == "owner" and not fields.get("owner"):
            return [], [({}, "the account has no owner")]
        return [{}], []
    to = step.to
    if to.owner:
        if not fields.get("owner"):
            return [], [({}, "the account has no owner")]
        return [{"id": None, "email": fields["owner"], "first_name": None, "last_name": None, "name": None,
                 "role": "owner", "title": None, "owner": True}], []
    order = {role: i for i, role in enumerate(to.roles)}
    matching = [c for c in facts.contacts
                if (not to.roles or c.get("role") in order)
                and (not to.titles or search_any(to.titles, c.get("title") or ""))]
    matching.sort(key=lambda c: (order.get(c.get("role"), 0), c["id"]))
    chosen, suppressed = [], []
    for contact in matching:
        reason = suppression_reason(contact, suppressed_hashes)
        if reason:
            suppressed.append((contact, reason))
        elif to.limit is None or len(chosen) < to.limit:
            chosen.append(contact)
    return chosen, suppressed


def suppressed_hashes_for(emails: Iterable[str]) -> set[str]:
    hashes = {_email_hash(e) for e in emails if e}
    if not hashes:
        return set()
    return set(db.session.execute(select(Suppression.email_hash).where(
        in_list(Suppression.email_hash, sorted(hashes)))).scalars())


# -- windows and caps ------------------------------------------------------------------


def workspace_window(account_tz: str | None = None) -> SendWindow:
    data = settings_service.current()["send_window"]
    window = SendWindow.from_dict(data)
    if account_tz:
        try:
            ZoneInfo(account_tz)
            window = SendWindow(account_tz, window.days, window.start, window.end)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return window


def window_for(pb: Playbook, account_fields: dict) -> SendWindow:
    return pb.send_window or workspace_window(account_fields.get("timezone"))


def workspace_caps() -> list[Cap]:
    """The workspace caps, as ``Cap``s: they apply to marketing emails."""
    caps = []
    for per, spec in (settings_service.current().get("caps") or {}).items():
        caps.append(Cap(per, int(spec["max"]), duration.parse(spec["per"]), "email"))
    return caps


@dataclass
class CapBook:
    """Counts of touches per (cap, contact|account id), loaded for a whole batch in one
    query per cap, then updated as the batch takes slots."""

    counts: dict = field(default_factory=lambda: defaultdict(int))
    #: (cap, owner) -> the latest due time among the touches counted: a slot is surely free
    #: once it has left the cap's window (a postponed touch waits for that).
    latest: dict = field(default_factory=dict)

    def load(self, cap: Cap, ids: set[int], earliest: datetime, latest: datetime) -> None:
        if not ids:
            return
        column = Touch.contact_id if cap.per == "contact" else Touch.account_id
        where = [in_list(column, sorted(ids)), Touch.status.in_(COUNTED), Touch.due_at > earliest - cap.within,
                 Touch.due_at <= latest + cap.within]
        if cap.channel:
            where.append(Touch.channel == cap.channel)
        for owner, count, last in db.session.execute(
                select(column, func.count(), func.max(Touch.due_at)).where(*where).group_by(column)):
            self.counts[(cap, owner)] = count
            self.latest[(cap, owner)] = last

    def free_at(self, cap: Cap, owner: int, due: datetime) -> datetime:
        """When the cap surely has a free slot again for ``owner``: its last counted touch
        has left the window."""
        last = self.latest.get((cap, owner))
        return max(due, last or due) + cap.within


# -- the engine's own sales alerts ----------------------------------------------------

#: How long a raised alert over its cap may wait for a free slot (a playbook's default
#: ``max_delay``); beyond that it is not sent (the inbox keeps it).
ALERT_MAX_DELAY = timedelta(days=7)


def alert_caps() -> list[Cap]:
    """``alerts.cap`` of the settings as a ``Cap``: alerts per account on the ``alert``
    channel, counting every alert touch (playbook alert steps too); [] when it is null."""
    spec = (settings_service.current().get("alerts") or {}).get("cap", settings_service.DEFAULTS["alerts"]["cap"])
    return [Cap("account", int(spec["max"]), duration.parse(spec["per"]), "alert")] if spec else []


def schedule_alerts(rows: list[dict], zones: dict[int, str | None], now: datetime) -> None:
    """When the engine's own alerts (level, surge, intent) go out, by the rules a playbook's
    alert step obeys: the workspace send window in the account's time zone (``zones``:
    account id -> its zone), and the alert cap (``alerts.cap``), deferred like a playbook's
    ``on_cap: defer``: a capped alert is ``scheduled`` (``postponed: capped: ...``) when the
    cap surely has a free slot again, moved to the window's next opening, if that is within
    ``ALERT_MAX_DELAY``, else ``suppressed`` (``capped: ...``). With ``alerts.immediate`` the
    window does not apply (the cap still does). Sets ``status``, ``due_at``, ``queued_at``
    and ``error`` of the touch ``rows`` (queued at ``now`` as made)."""
    if not rows:
        return
    immediate = bool((settings_service.current().get("alerts") or {}).get("immediate", False))
    caps, book, due_of = alert_caps(), CapBook(), {}
    for row in rows:
        window = None if immediate else workspace_window(zones.get(row["account_id"]))
        due_of[id(row)] = (window, now if window is None else next_window_opening(window, now))
    dues = [due for _, due in due_of.values()]
    for cap in caps:
        book.load(cap, {row["account_id"] for row in rows}, min(dues), max(dues))
    for row in rows:
        window, due = due_of[id(row)]
        owner, error = row["account_id"], None
        full = [cap for cap in caps if book.counts[(cap, owner)] >= cap.max]
        if full:
            later = max(book.free_at(cap, owner, due) for cap in full)
            later = later if window is None else next_window_opening(window, later)
            said = "; ".join(f"at most {c.max} per account within {duration.format(c.within)}" for c in full)
            if later - due > ALERT_MAX_DELAY:
                row.update(status="suppressed", due_at=due, queued_at=None, error=f"capped: {said}")
                continue
            due, error = later, f"postponed: capped: {said}"
            for cap in caps:
                book.latest[(cap, owner)] = max(book.latest.get((cap, owner)) or later, later)
        else:
            for cap in caps:
                book.counts[(cap, owner)] += 1
                book.latest[(cap, owner)] = max(book.latest.get((cap, owner)) or due, due)
        queued = due <= now
        row.update(status="queued" if queued else "scheduled", due_at=due, queued_at=now if queued else None,
                   error=error)


# -- building touch rows for a batch ---------------------------------------------------


@dataclass
class PendingTouch:
    """What the dispatcher hands :func:`build`: one touch action of one enrollment."""

    enrollment_id: int
    playbook_id: int
    priority: int
    playbook: Playbook
    step: object
    account_id: int
    facts: object
    now: datetime
    #: When the step became due for the enrollment (its ``next_run_at``): a touch sent at
    #: once is due from then, so its lag counts the time the enrollment waited for a pass.
    due_from: datetime | None = None


def build(pending: list[PendingTouch], now: datetime, book: CapBook | None = None) -> list[dict]:
    """Touch rows (dicts for a bulk insert) for a batch of touch actions.

    ``book``: where cap counts come from (the touches table by default; the dry run
    passes one that also counts the touches it has simulated)."""
    rows: list[dict] = []
    emails = [c.get("email") for p in pending if isinstance(p.step, EmailStep) for c in p.facts.contacts]
    hashes = suppressed_hashes_for(e for e in emails if e)
    ws_caps = workspace_caps()
    book = book if book is not None else CapBook()
    planned = []
    openings: dict = {}  # send window -> its next opening at ``now``
    for p in pending:
        chosen, suppressed = recipients_for(p.step, p.facts, hashes)
        window = window_for(p.playbook, p.facts.fields)
        due = openings.get(window)
        if due is None:
            due = openings[window] = next_window_opening(window, now)
        for contact, reason in suppressed:
            rows.append(_row(p, contact, "suppressed", now, now, error=reason, variant=variant_for(p, contact)))
        start = min(due, p.due_from) if due <= now and p.due_from else due
        for contact in chosen:
            planned.append((p, contact, start))
    # Higher priority first: it takes the capped slots.
    planned.sort(key=lambda item: (-item[0].priority, item[0].enrollment_id))
    _preload_caps(book, planned, ws_caps)
    for p, contact, due in planned:
        caps = _caps_of(p, ws_caps)
        capped = _take_slot(book, caps, p, contact, due)
        if capped:
            later = postponed_until(book, caps, p, contact, due)
            if later is None:
                rows.append(_row(p, contact, "suppressed", now, due, error=f"capped: {capped}",
                                 variant=variant_for(p, contact)))
                continue
            due, capped = later, f"postponed: capped: {capped}"
        status = "queued" if due <= now else "scheduled"
        variant = variant_for(p, contact)
        try:
            payload = _render(p, contact, now, variant)
        except TemplateError as exc:
            rows.append(_row(p, contact, "failed", now, due, error=f"template error: {exc}", variant=variant))
            continue
        rows.append(_row(p, contact, status, now, due, payload=payload, error=capped or None, variant=variant))
    return rows


def postponed_until(book: CapBook, caps: list[Cap], p: PendingTouch, contact: dict, due: datetime) -> datetime | None:
    """Where a touch over a cap goes: with ``on_cap: defer`` (the default; the step's, else the playbook's),
    the next time every cap has a free slot, moved to the send window's next opening, if
    that is within ``max_delay`` of ``due`` (the slot is taken then); None when the touch
    is skipped (``on_cap: skip``, or no slot soon enough). The dry run asks the same."""
    pb = p.playbook
    on_cap, max_delay = pb.cap_policy(p.step)
    if on_cap != "defer":
        return None
    later = due
    for cap in caps:
        owner = contact.get("id") if cap.per == "contact" else p.account_id
        if owner is not None and book.counts[(cap, owner)] >= cap.max:
            later = max(later, book.free_at(cap, owner, due))
    later = next_window_opening(window_for(pb, p.facts.fields), later)
    if later - due > max_delay:
        return None
    for cap in caps:
        owner = contact.get("id") if cap.per == "contact" else p.account_id
        if owner is not None:
            book.latest[(cap, owner)] = max(book.latest.get((cap, owner)) or later, later)
    return later


def _caps_of(p: PendingTouch, ws_caps: list[Cap]) -> list[Cap]:
    caps = list(p.playbook.caps) + (ws_caps if p.step.channel == "email" else [])
    return [cap for cap in caps if not cap.channel or cap.channel == p.step.channel]


def _preload_caps(book: CapBook, planned, ws_caps: list[Cap]) -> None:
    """One count query per distinct cap for every contact/account of the batch."""
    wanted: dict[Cap, set[int]] = defaultdict(set)
    dues = [due for _, _, due in planned]
    for p, contact, _due in planned:
        for cap in _caps_of(p, ws_caps):
            owner = contact.get("id") if cap.per == "contact" else p.account_id
            if owner is not None:
                wanted[cap].add(owner)
    for cap, ids in wanted.items():
        book.load(cap, ids, min(dues), max(dues))


def _take_slot(book: CapBook, caps: list[Cap], p: PendingTouch, contact: dict, due: datetime) -> str | None:
    applicable = []
    for cap in caps:
        owner = contact.get("id") if cap.per == "contact" else p.account_id
        if owner is None:
            continue
        if book.counts[(cap, owner)] >= cap.max:
            return f"at most {cap.max} per {cap.per} within {duration.format(cap.within)}"
        applicable.append((cap, owner))
    for cap, owner in applicable:
        book.counts[(cap, owner)] += 1
        book.latest[(cap, owner)] = max(book.latest.get((cap, owner)) or due, due)
    return None


def variant_for(p: PendingTouch, contact: dict) -> str | None:
    """The name of the A/B variant this contact gets from an email step with variants
    (the account owner is keyed ``owner:<account id>``), None for any other step."""
    step_variants = getattr(p.step, "variants", ())
    if not step_variants:
        return None
    key = variants.recipient_key((contact or {}).get("id"), p.account_id)
    return variants.assign(p.playbook.key, p.step.id, key, step_variants).name


def _render(p: PendingTouch, contact: dict, now: datetime, variant: str | None = None) -> dict:
    fields = p.facts.fields
    if isinstance(p.step, EmailStep):
        step = p.step
        if variant is not None:
            step = variants.apply(step, next(v for v in step.variants if v.name == variant))
        url = unsubscribe_url(contact["id"] if contact.get("id") is not None else f"owner:{p.account_id}")
        return render_touch(step, p.playbook, fields, contact, unsubscribe_url=url, now=now)
    payload = render_touch(p.step, p.playbook, fields, None, now=now)
    if payload.get("to") == "owner":
        payload["to"] = fields.get("owner")
    return payload


def _row(p: PendingTouch, contact: dict, status: str, now: datetime, due: datetime,
         payload: dict | None = None, error: str | None = None, variant: str | None = None) -> dict:
    contact_id = contact.get("id") if contact else None
    return {
        "enrollment_id": p.enrollment_id, "playbook_id": p.playbook_id, "account_id": p.account_id,
        "contact_id": contact_id, "contact_key": contact_id or 0, "step_id": p.step.id,
        "step_index": p.step.index, "kind": p.step.kind, "channel": p.step.channel,
        "connector": getattr(p.step, "connector", None), "variant": variant, "status": status,
        "payload": payload or {},
        "error": error, "due_at": due, "queued_at": now if status == "queued" else None, "claimed_at": None,
        "sent_at": None, "attempts": 0, "created_at": now, "updated_at": now,
    }


# -- scheduled touches -----------------------------------------------------------------


def promote_due(now: datetime, limit: int = 5000) -> list[tuple[int, str | None]]:
    """Scheduled touches whose time came (a send window opened, a capped slot freed):
    queued now; those of active playbooks and the engine's raised alerts. Commits."""
    active = select(PlaybookRow.id).where(PlaybookRow.status == "active")
    ids = list(db.session.execute(select(Touch.id).where(
        Touch.status == "scheduled", Touch.due_at <= now,
        or_(Touch.playbook_id.in_(active), Touch.alert_id.is_not(None)))  # a raised alert has no playbook
        .order_by(Touch.due_at).limit(limit)).scalars())
    if not ids:
        return []
    rows = db.session.execute(update(Touch).where(Touch.id.in_(ids), Touch.status == "scheduled")
                              .values(status="queued", queued_at=now, updated_at=now)
                              .returning(Touch.id, Touch.connector)
                              .execution_options(synchronize_session=False)).all()
    db.session.commit()
    return [(r[0], r[1]) for r in rows]


def touch_key(t) -> str:
    """The touch's idempotency key, stable across retries: ``enrollment:step:contact``, or
    ``alert:<id>`` for a sales alert (``t``: a ``Touch`` or a row with its columns)."""
    return f"alert:{t.alert_id}" if t.alert_id else f"{t.enrollment_id}:{t.step_id}:{t.contact_key}"


def serialize(touch: Touch, playbook_key: str | None = None) -> dict:
    payload = touch.payload or {}
    return {
        "id": touch.id, "playbook": playbook_key, "playbook_id": touch.playbook_id,
        "enrollment_id": touch.enrollment_id, "account_id": touch.account_id, "contact_id": touch.contact_id,
        "step": touch.step_id, "kind": touch.kind, "channel": touch.channel, "connector": touch.connector,
        "status": touch.status, "error": touch.error, "attempts": touch.attempts,
        "due_at": touch.due_at.isoformat() if touch.due_at else None,
        "sent_at": touch.sent_at.isoformat() if touch.sent_at else None,
        "provider_id": touch.provider_id, "subject": payload.get("subject"), "variant": touch.variant,
    }
