"""Accounts: create, upsert by domain, update, delete, list, and stage changes.

:func:`change_stage` is the one place an account's stage changes: the API, the pages,
imports, the playbook engine (``set_stage``) and the CRM sync all call it, so every
move is in the history (``StageChange``) with its source (``api:<email>``,
``import``, ``playbook:<key>``, ``crm:<connector>``, ``ui:<email>``). It flushes but
does not commit: the caller's transaction holds the move and whatever caused it.
When ``abm.services.engine_hooks.stage_changed(account, from_stage, to_stage, at)``
exists, it is called after each move (exits and ``stage_changed`` triggers).

Input dictionaries use the API's field names (``owner`` is a user's email or id) and
are checked against :data:`CREATE_SCHEMA` / :data:`UPDATE_SCHEMA`; problems raise
:class:`abm.errors.ValidationError` naming each field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, func, or_, select

from abm.db import db, utcnow
from abm.errors import Conflict, NotFound, ValidationError
from abm.models import Account, AuditLog, Contact, Event, Opportunity, StageChange, Touch, User
from abm.normalize import NormalizeError, normalize_domain
from abm.services import engine_hooks, paging
from abm.services import settings as settings_service
from abm.services.paging import SortKey
from abm.services.validation import check, iso

ENGAGEMENT_LEVELS = ("cold", "warm", "hot")
_NULLABLE_STR = {"type": ["string", "null"]}

PROPERTIES: dict = {
    "name": {"type": "string", "minLength": 1, "maxLength": 300},
    "domain": {"type": "string", "minLength": 1, "maxLength": 253, "description": "normalised: example.com"},
    "industry": {**_NULLABLE_STR, "maxLength": 100},
    "employees": {"type": ["integer", "null"], "minimum": 0},
    "annual_revenue": {"type": ["number", "null"], "minimum": 0, "maximum": 1e15},
    "country": {**_NULLABLE_STR, "maxLength": 100},
    "tier": {"type": ["integer", "null"], "minimum": 1, "maximum": 10},
    "tags": {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1, "maxLength": 100}},
    "owner": {"type": ["string", "integer", "null"], "maxLength": 320,
              "description": "the owning user's email or id; null for none"},
    "stage": {"type": "string", "minLength": 1, "maxLength": 50,
              "description": "one of the workspace's stages (GET /settings)"},
    "timezone": {**_NULLABLE_STR, "maxLength": 64, "description": "IANA name, e.g. Europe/Paris"},
    "attributes": {"type": "object"},
    "crm_ids": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 100}},
    "notes": {**_NULLABLE_STR, "maxLength": 100_000},
}

CREATE_SCHEMA: dict = {"type": "object", "additionalProperties": False, "required": ["domain"],
                       "properties": PROPERTIES}
UPDATE_SCHEMA: dict = {"type": "object", "additionalProperties": False, "properties": PROPERTIES}
#: What an account executive may change, on the accounts they own.
AE_FIELDS = frozenset({"stage", "notes"})

_OWNER = {"type": ["object", "null"], "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}}}
_TIME = {"type": "string", "format": "date-time"}
#: The shape :func:`serialize_account` returns (documented in OpenAPI).
ACCOUNT_SCHEMA: dict = {
    "type": "object",
    "required": ["id", "name", "domain", "stage", "score", "engagement", "owner", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "integer"},
        **{k: v for k, v in PROPERTIES.items() if k not in ("owner",)},
        "score": {"type": "number"},
        "engagement": {"enum": list(ENGAGEMENT_LEVELS)},
        "owner": _OWNER,
        "score_updated_at": {"type": ["string", "null"], "format": "date-time"},
        "created_at": _TIME, "updated_at": _TIME,
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}
STAGE_CHANGE_SCHEMA: dict = {"type": "object", "properties": {
    "id": {"type": "integer"}, "from_stage": {"type": ["string", "null"]}, "to_stage": {"type": "string"},
    "changed_at": _TIME, "source": {"type": "string"}, "actor_id": {"type": ["integer", "null"]}}}

#: ``sort`` names the list accepts; ``-name`` is the same key descending.
SORTS = {
    "name": (func.lower(Account.name), "plain"),
    "domain": (Account.domain, "plain"),
    "score": (Account.score, "plain"),
    "stage": (Account.stage, "plain"),
    "created_at": (Account.created_at, "datetime"),
    "updated_at": (Account.updated_at, "datetime"),
}
FILTERS = ("stage", "tier", "owner", "engagement", "fit", "q")
#: ICP fit bands (docs/fit.md), highest first: name -> lowest fit score of the band (each
#: band runs up to the next one's floor); ``none``: not scored yet.
FIT_BANDS = {"high": 70.0, "medium": 40.0, "low": 0.0}


def fit_band_clause(band: str):
    floors = list(FIT_BANDS.items())
    i = [name for name, _ in floors].index(band)
    clause = Account.fit_score >= floors[i][1]
    return clause if i == 0 else and_(clause, Account.fit_score < floors[i - 1][1])


#: Ids beyond this are not ids of ours (and would overflow PostgreSQL's integer).
MAX_ID = 2**31 - 1


def get(account_id: int) -> Account:
    account = db.session.get(Account, account_id) if 0 < account_id <= MAX_ID else None
    if account is None:
        raise NotFound(f"account {account_id}")
    return account


def find_by_domain(domain: str) -> Account | None:
    return db.session.execute(select(Account).where(Account.domain == domain)).scalar_one_or_none()


def domain_or_error(value, path: str = "domain") -> str:
    try:
        return normalize_domain(value if isinstance(value, str) else "")
    except NormalizeError as exc:
        raise ValidationError([{"path": path, "message": str(exc)}]) from None


def resolve_user(value, path: str = "owner") -> User | None:
    """A user from an id or an email (None stays None); a 422 on ``path`` if there is none."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = ""
    user = None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        user = db.session.get(User, int(value)) if 0 < int(value) <= MAX_ID else None
    elif isinstance(value, str):
        user = db.session.execute(select(User).where(User.email == value.strip().lower())).scalar_one_or_none()
    if user is None:
        raise ValidationError([{"path": path, "message": f"no user with id or email {value!r}"}])
    return user


def _stages() -> list[str]:
    return settings_service.current()["stages"]


def check_stage(stage, path: str = "stage") -> str:
    stages = _stages()
    if stage not in stages:
        raise ValidationError([{"path": path, "message": f"unknown stage {stage!r}; the stages are "
                                                         f"{', '.join(stages)} (see GET /settings)"}])
    return stage


def _apply(account: Account, data: dict) -> None:
    """Copy the plain fields of ``data`` onto ``account`` (stage is not one: see change_stage)."""
    problems = []
    for key, value in data.items():
        if key in ("stage", "domain"):
            continue
        if key == "owner":
            account.owner = resolve_user(value) if value is not None else None
        elif key == "timezone" and value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append({"path": "timezone", "message": f"unknown time zone {value!r} "
                                                                "(use an IANA name such as Europe/Paris)"})
                continue
            account.timezone = value
        elif key == "annual_revenue":
            account.annual_revenue = Decimal(str(value)) if value is not None else None
        elif key == "tags":
            account.tags = list(dict.fromkeys(t.strip() for t in value if t.strip()))
        elif key in ("name", "industry", "country", "notes"):
            setattr(account, key, value.strip() if isinstance(value, str) and key != "notes" else value)
        else:
            setattr(account, key, value)
    if problems:
        raise ValidationError(problems)


def _audit(action: str, account: Account, actor: User | None, details: dict | None = None) -> None:
    db.session.add(AuditLog(actor_id=actor.id if actor else None, action=action, target_type="account",
                            target_id=str(account.id), details=details or {}))


def create(data: dict, *, source: str, actor: User | None = None, commit: bool = True) -> Account:
    """A new account from API fields; 409 (with the existing ``id``) when the domain is known."""
    check(CREATE_SCHEMA, data)
    domain = domain_or_error(data["domain"])
    existing = find_by_domain(domain)
    if existing is not None:
        raise Conflict(f"an account with domain {domain} exists already (id {existing.id}); "
                       f"use PATCH /accounts/{existing.id} or PUT /accounts/by-domain/{domain}",
                       extra={"id": existing.id})
    stage = check_stage(data["stage"]) if "stage" in data else _stages()[0]
    account = Account(domain=domain, name=(data.get("name") or domain).strip(), stage=stage,
                      tags=[], attributes={}, crm_ids={})
    _apply(account, data)
    db.session.add(account)
    db.session.flush()
    db.session.add(StageChange(account_id=account.id, from_stage=None, to_stage=stage, changed_at=utcnow(),
                               source=source, actor_id=actor.id if actor else None))
    _audit("account.create", account, actor, {"domain": domain, "source": source})
    if commit:
        db.session.commit()
    return account


def upsert_by_domain(domain: str, data: dict, *, source: str, actor: User | None = None,
                     commit: bool = True) -> tuple[Account, bool]:
    """Create the account of ``domain`` or update the fields given; returns (account, created).

    A ``domain`` in ``data`` must name the same domain.
    """
    check(UPDATE_SCHEMA, data)
    domain = domain_or_error(domain)
    if "domain" in data and domain_or_error(data["domain"]) != domain:
        raise ValidationError([{"path": "domain", "message": f"differs from the domain in the path ({domain})"}])
    account = find_by_domain(domain)
    if account is None:
        return create({**data, "domain": domain}, source=source, actor=actor, commit=commit), True
    return update(account, {k: v for k, v in data.items() if k != "domain"}, source=source, actor=actor,
                  commit=commit), False


def update(account: Account, changes: dict, *, source: str, actor: User | None = None,
           commit: bool = True) -> Account:
    """Change the fields given; a changed stage goes through :func:`change_stage`."""
    check(UPDATE_SCHEMA, changes)
    if "domain" in changes:
        domain = domain_or_error(changes["domain"])
        other = find_by_domain(domain)
        if other is not None and other.id != account.id:
            raise Conflict(f"an account with domain {domain} exists already (id {other.id})", extra={"id": other.id})
        account.domain = domain
    if "stage" in changes:
        check_stage(changes["stage"])
    _apply(account, changes)
    if "stage" in changes:
        change_stage(account, changes["stage"], source=source, actor_id=actor.id if actor else None)
    account.updated_at = utcnow()
    _audit("account.update", account, actor, {"fields": sorted(changes), "source": source})
    if commit:
        db.session.commit()
    return account


def delete(account: Account, *, actor: User | None = None) -> None:
    """Delete the account and what hangs on it (contacts, history, events: the foreign keys cascade)."""
    _audit("account.delete", account, actor, {"domain": account.domain})
    db.session.delete(account)
    db.session.commit()


def change_stage(account: Account, to_stage: str, source: str, actor_id: int | None,
                 at: datetime | None = None) -> StageChange | None:
    """Move ``account`` to ``to_stage`` and record it; None when it is there already.

    Raises ValidationError for a stage the workspace does not have. Flushes, does not
    commit (the caller's transaction decides).
    """
    check_stage(to_stage)
    if account.stage == to_stage:
        return None
    at = at or utcnow()
    change = StageChange(account_id=account.id, from_stage=account.stage, to_stage=to_stage, changed_at=at,
                         source=source[:100], actor_id=actor_id)
    from_stage = account.stage
    account.stage = to_stage
    account.updated_at = utcnow()
    db.session.add(change)
    db.session.flush()
    hook = getattr(engine_hooks, "stage_changed", None)
    if hook is not None:
        hook(account, from_stage, to_stage, at)
    return change


def stage_history(account_id: int) -> list[StageChange]:
    return list(db.session.execute(select(StageChange).where(StageChange.account_id == account_id)
                                   .order_by(StageChange.changed_at.desc(), StageChange.id.desc())).scalars())


def _split(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _filter_clauses(filters: dict, me: int | None) -> list:
    clauses, problems = [], []
    for key, value in filters.items():
        if value in (None, "", []):
            continue
        if key not in FILTERS:
            problems.append({"path": key, "message": f"unknown filter; the filters are {', '.join(FILTERS)}"})
        elif key == "stage":
            clauses.append(Account.stage.in_(_split(value)))
        elif key == "engagement":
            levels = _split(value)
            bad = [v for v in levels if v not in ENGAGEMENT_LEVELS]
            if bad:
                problems.append({"path": "engagement", "message": f"must be among cold, warm, hot, not {bad[0]!r}"})
            clauses.append(Account.engagement.in_(levels))
        elif key == "tier":
            try:
                clauses.append(Account.tier.in_([int(v) for v in _split(value)]))
            except ValueError:
                problems.append({"path": "tier", "message": "must be a tier number or a comma list of them"})
        elif key == "owner":
            owners, want_none = [], False
            for v in _split(value):
                if v == "none":
                    want_none = True
                elif v == "me" and me is not None:
                    owners.append(me)
                else:
                    try:
                        owners.append(resolve_user(v).id)
                    except ValidationError as exc:
                        problems.extend(exc.details)
            parts = [Account.owner_id.in_(owners)] if owners else []
            if want_none:
                parts.append(Account.owner_id.is_(None))
            clauses.append(or_(*parts) if parts else Account.id.is_(None))
        elif key == "fit":
            bands = _split(value)
            bad = [v for v in bands if v not in (*FIT_BANDS, "none")]
            if bad:
                problems.append({"path": "fit", "message": f"must be among high, medium, low, none, not {bad[0]!r}"})
            parts = [fit_band_clause(b) for b in bands if b in FIT_BANDS]
            if "none" in bands:
                parts.append(Account.fit_score.is_(None))
            clauses.append(or_(*parts) if parts else Account.id.is_(None))
        elif key == "q":
            text = str(value).strip().lower()
            clauses.append(or_(func.lower(Account.name).contains(text, autoescape=True),
                               Account.domain.contains(text, autoescape=True)))
    if problems:
        raise ValidationError(problems)
    return clauses


#: Public name of the filter clauses (the accounts page counts stages with them).
filter_clauses = _filter_clauses


def sort_keys(sort: str) -> list[SortKey]:
    """The keys of ``sort`` (``name``, ``-score`` ...) ending with the id; a 422 on an unknown sort."""
    name = (sort or "-score").strip()
    descending = name.startswith("-")
    base = name.lstrip("-+")
    if base not in SORTS:
        raise ValidationError([{"path": "sort", "message": f"unknown sort {sort!r}; use one of "
                                                          f"{', '.join(SORTS)}, with - for descending"}])
    expr, kind = SORTS[base]
    return [SortKey(expr, descending, kind), SortKey(Account.id, descending)]


def list_accounts(filters: dict | None = None, sort: str = "-score", cursor: str | None = None,
                  limit: int = paging.DEFAULT_LIMIT, *, first_owner_id: int | None = None,
                  me: int | None = None) -> tuple[list[Account], str | None]:
    """One page of accounts: ``filters`` (stage, tier, owner, engagement, q), ``sort``, keyset ``cursor``.

    ``first_owner_id`` puts that user's accounts first (an AE's view); ``me`` lets
    ``owner=me`` mean that user. Values may be comma lists (``stage=aware,engaged``).
    Returns (accounts, next_cursor); next_cursor is None on the last page.
    """
    keys = sort_keys(sort)
    query = select(Account).where(*_filter_clauses(filters or {}, me))
    if first_owner_id is None:
        return paging.page(query, keys, sort or "-score", cursor, limit)
    mine = query.where(Account.owner_id == first_owner_id)
    others = query.where(or_(Account.owner_id != first_owner_id, Account.owner_id.is_(None)))
    return paging.page_phased([mine, others], keys, f"{sort or '-score'}|{first_owner_id}", cursor, limit)


def counts(account_id: int) -> dict[str, int]:
    def n(q) -> int:
        return db.session.execute(q).scalar_one()

    return {
        "contacts": n(select(func.count()).select_from(Contact).where(
            Contact.account_id == account_id, Contact.erased_at.is_(None))),
        "opportunities": n(select(func.count()).select_from(Opportunity).where(Opportunity.account_id == account_id)),
        "events": n(select(func.coalesce(func.sum(Event.quantity), 0)).where(Event.account_id == account_id)),
        "touches": n(select(func.count()).select_from(Touch).where(Touch.account_id == account_id)),
    }


def serialize_owner(user: User | None) -> dict | None:
    return {"id": user.id, "email": user.email, "name": user.name} if user is not None else None


def serialize_account(account: Account, with_counts: bool = False) -> dict:
    out = {
        "id": account.id, "name": account.name, "domain": account.domain, "industry": account.industry,
        "employees": account.employees,
        "annual_revenue": float(account.annual_revenue) if account.annual_revenue is not None else None,
        "country": account.country, "tier": account.tier, "tags": list(account.tags or []),
        "stage": account.stage, "score": round(account.score or 0.0, 2), "engagement": account.engagement,
        "owner": serialize_owner(account.owner), "timezone": account.timezone,
        "attributes": account.attributes or {}, "crm_ids": account.crm_ids or {}, "notes": account.notes,
        "score_updated_at": iso(account.score_updated_at), "created_at": iso(account.created_at),
        "updated_at": iso(account.updated_at),
    }
    if with_counts:
        out["counts"] = counts(account.id)
    return out


def serialize_stage_change(change: StageChange) -> dict:
    return {"id": change.id, "from_stage": change.from_stage, "to_stage": change.to_stage,
            "changed_at": iso(change.changed_at), "source": change.source, "actor_id": change.actor_id}
