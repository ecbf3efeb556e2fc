"""Spend: entries recorded by the API, the page or a CSV, and their share of a KPI period.

Each entry names a playbook, a channel or a product (or several) and a day or a period;
the KPIs prorate it by day to the period asked for (docs/kpis.md, "Cost").
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from abm.db import db
from abm.errors import ValidationError
from abm.models import Cost, Playbook
from abm.services.transactions import rolls_back_on_error
from abm.services.validation import refuse_nul, too_long

SPEND_FIELDS = {"playbook", "channel", "product", "amount", "currency", "date", "from", "to"}
MAX_SPEND_ROWS = 10_000  # rows of one CSV upload
SPEND_CHANNELS = ("email", "ads", "alert", "task", "webhook", "events", "other")


@rolls_back_on_error
def record_cost(data: dict, source: str = "api") -> Cost:
    """Store one spend entry (``{playbook?, channel?, product?, amount, currency, date | from, to}``)."""
    refuse_nul(data)  # before any lookup: PostgreSQL cannot take one (the CSV upload comes here too)
    problems = [{"path": k, "message": "unknown field"} for k in data if k not in SPEND_FIELDS]
    amount = _amount(data, problems)
    currency = str(data.get("currency") or "USD").upper()
    if len(currency) != 3 or not currency.isalpha():
        problems.append({"path": "currency", "message": "must be a 3-letter ISO code such as USD"})
    start, end = _dates(data, problems)
    _check_target(data, problems)
    problems.extend(too_long(data, {"playbook": Cost.playbook_key, "channel": Cost.channel,
                                    "product": Cost.product}))
    if problems:
        raise ValidationError(problems)
    cost = Cost(playbook_key=data.get("playbook"), channel=data.get("channel"), product=data.get("product"),
                amount=amount, currency=currency, date_from=start, date_to=end, source=source)
    db.session.add(cost)
    db.session.commit()
    return cost


def record_csv(stream) -> tuple[int, list[dict]]:
    """A CSV of spend (columns playbook, channel, product, amount, currency, date, from, to).

    Good rows are recorded (each commits), bad rows reported by row and column: (recorded, errors).
    """
    text = stream.read().decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in SPEND_FIELDS]
    if not header or "amount" not in header or unknown:
        why = (f"unknown column {unknown[0]!r}" if unknown else "the header needs an amount column")
        return 0, [{"row": 1, "path": unknown[0] if unknown else "amount",
                    "message": f"{why} (columns: {', '.join(sorted(SPEND_FIELDS))})"}]
    created, errors = 0, []
    for n, raw in enumerate(reader, start=2):
        if n > MAX_SPEND_ROWS + 1:
            errors.append({"row": n, "path": None, "message": f"only the first {MAX_SPEND_ROWS:,} rows are read"})
            break
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not any(row.values()):
            continue
        try:
            record_cost({k: v for k, v in row.items() if v}, source="csv")
            created += 1
        except ValidationError as exc:
            errors += [{"row": n, **d} for d in exc.details]
    return created, errors


def _amount(data: dict, problems: list[dict]) -> Decimal:
    try:
        amount = Decimal(str(data.get("amount")))
        if amount >= 0 and amount.is_finite():
            return amount
    except (ValueError, ArithmeticError):
        pass
    problems.append({"path": "amount", "message": "must be a non-negative number"})
    return Decimal(0)


def _dates(data: dict, problems: list[dict]) -> tuple[date | None, date | None]:
    """A single ``date``, or ``from`` and ``to`` (inclusive)."""
    dates = {}
    for key in ("date", "from", "to"):
        if data.get(key) is not None:
            try:
                dates[key] = date.fromisoformat(str(data[key]))
            except ValueError:
                problems.append({"path": key, "message": "must be a date YYYY-MM-DD"})
    if "date" in dates and ({"from", "to"} & set(data)):
        problems.append({"path": "date", "message": "give either date or from and to, not both"})
    elif "date" not in data and not ({"from", "to"} <= set(data)):
        problems.append({"path": "date", "message": "give a date, or from and to"})
    start, end = (dates.get("date"), dates.get("date")) if "date" in dates else (dates.get("from"), dates.get("to"))
    if start and end and end < start:
        problems.append({"path": "to", "message": "must not be before from"})
    return start, end


def _check_target(data: dict, problems: list[dict]) -> None:
    """The spend names a playbook that exists, a known channel, or a product."""
    if not any(data.get(k) for k in ("playbook", "channel", "product")):
        problems.append({"path": "playbook", "message": "name at least one of playbook, channel or product"})
    if data.get("channel") and data["channel"] not in SPEND_CHANNELS:
        problems.append({"path": "channel", "message": "unknown channel"})
    if data.get("playbook") and not db.session.execute(
            select(Playbook.id).where(Playbook.key == data["playbook"])).first():
        problems.append({"path": "playbook", "message": f"no playbook with key {data['playbook']!r}"})


def prorate(cost: Cost, start: datetime, end: datetime) -> float:
    """The part of ``cost`` that falls in [start, end), by day."""
    first = datetime(cost.date_from.year, cost.date_from.month, cost.date_from.day, tzinfo=start.tzinfo)
    last = datetime(cost.date_to.year, cost.date_to.month, cost.date_to.day, tzinfo=start.tzinfo) + timedelta(days=1)
    overlap = (min(last, end) - max(first, start)).total_seconds()
    if overlap <= 0:
        return 0.0
    return float(cost.amount) * overlap / (last - first).total_seconds()


def spend_group(cost: Cost, group_by: str, products: dict[str, str | None]) -> str:
    """The group a spend entry belongs to: the field it names, else ``(unassigned)``."""
    key = {"playbook": cost.playbook_key, "channel": cost.channel, "product": cost.product}.get(group_by)
    if key is None and group_by == "product" and cost.playbook_key:
        key = products.get(cost.playbook_key)
    return key or "(unassigned)"


def add_to_groups(groups: dict, group_by: str, start: datetime, end: datetime, playbook: str | None,
                  product: str | None) -> None:
    """Spend entries prorated by day to the period (unit costs per touch come with the reach)."""
    q = select(Cost).where(Cost.date_to >= start.date(), Cost.date_from <= end.date())
    if playbook is not None:
        q = q.where(Cost.playbook_key == playbook)
    if product is not None:
        q = q.where(Cost.product == product)
    products = dict(db.session.execute(select(Playbook.key, Playbook.product)).all())
    for c in db.session.execute(q).scalars():
        amount = prorate(c, start, end)
        if amount:
            groups[spend_group(c, group_by, products)]["cost"] += amount


# -- reading (the spend page and the KPI filters) -------------------------------------


def latest(limit: int = 200) -> list[Cost]:
    """The latest spend entries, by their start date, newest first."""
    return list(db.session.execute(select(Cost).order_by(Cost.date_from.desc(), Cost.id.desc())
                                   .limit(limit)).scalars())


def playbook_keys() -> list[str]:
    """Every playbook's key, the choices of a spend entry's and the KPIs' playbook."""
    return list(db.session.execute(select(Playbook.key).order_by(Playbook.key)).scalars())


def products() -> list[str]:
    """The products the playbooks name, the choices of the KPIs' product filter."""
    return sorted({p for p in db.session.execute(select(Playbook.product)).scalars() if p})
