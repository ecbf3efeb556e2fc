"""Account identification of web visits, and visitor stitching.

A visit from the site snippet carries the visitor's IP address. The drain asks, in this
order, (1) the networks an admin attached to accounts, (2) the ip2asn ranges of the
autonomous systems mapped to accounts, (3) cached company look-ups by IP (IPinfo,
filled by a worker job). Matching runs on an in-memory index per process
(:class:`abm.ipranges.AddressIndex`), rebuilt when the data's version counter moves, so
the tracking endpoint does no work for it and the drain a few microseconds a visit.

A match sets the event's account (never a contact), records ``ip_match`` (source and
confidence) and keeps only the truncated network; an unmatched address is kept for
``identification.raw_ip_days`` (a later look-up can still match it), then dropped.

Stitching: when an event carries both a visitor id and a known contact (a form fill, a
visit after a tracked click), the visitor becomes known; its anonymous visits within
``identification.stitch_days`` are attributed to the contact and account, and visits that
arrive later with that visitor id are matched on arrival.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from abm import ipranges
from abm.db import db, in_list, utcnow
from abm.models import (
    Account,
    AccountNetwork,
    AsnAccount,
    AsnRange,
    DataVersion,
    Event,
    IpLookup,
    Visitor,
)
from abm.services import settings as settings_service

#: How sure each source is that a visit came from the account (shown with the match).
CONFIDENCE = {"network": 0.95, "asn": 0.8, "asn_name": 0.6, "lookup": 0.6}
SOURCES = ("networks", "ip2asn", "lookups")

_cache_lock = threading.Lock()
_cache: dict = {"key": None, "networks": None, "asn": None}


def config() -> dict:
    return settings_service.current()["identification"]


def bump(name: str) -> None:
    """Mark reference data ``name`` (one of SOURCES) as changed; processes rebuild."""
    row = db.session.get(DataVersion, name)
    if row is None:
        db.session.add(DataVersion(name=name, version=1, changed_at=utcnow()))
    else:
        row.version += 1
        row.changed_at = utcnow()


def _versions() -> tuple:
    """What the in-memory indexes must match: the database, and each source's counter
    and time of change (a restored or re-created database restarts its counters)."""
    rows = db.session.execute(select(DataVersion.name, DataVersion.version, DataVersion.changed_at)
                              .where(DataVersion.name.in_(SOURCES))).all()
    return (str(db.session.get_bind().url), *sorted(tuple(r) for r in rows))


def _hex_range(start: str, end: str, version: int) -> ipranges.IpRange:
    return ipranges.IpRange(int(start, 16), int(end, 16), version)


def _network_index() -> ipranges.AddressIndex:
    rows = db.session.execute(select(AccountNetwork.range_start, AccountNetwork.range_end,
                                     AccountNetwork.version, AccountNetwork.account_id))
    return ipranges.AddressIndex((_hex_range(s, e, v), aid) for s, e, v, aid in rows)


def _asn_index() -> ipranges.AddressIndex:
    """ip2asn ranges whose AS (by number, else by organisation name) maps to an account.
    The account id is stored negative for a match by name, to tell the confidence apart."""
    by_number = (select(AsnRange.range_start, AsnRange.range_end, AsnRange.version, AsnAccount.account_id)
                 .join(AsnAccount, AsnAccount.asn == AsnRange.asn))
    by_name = (select(AsnRange.range_start, AsnRange.range_end, AsnRange.version, -AsnAccount.account_id)
               .join(AsnAccount, and_(AsnAccount.asn.is_(None), AsnAccount.org_name == AsnRange.description)))
    rows = list(db.session.execute(by_name)) + list(db.session.execute(by_number))
    return ipranges.AddressIndex((_hex_range(s, e, v), aid) for s, e, v, aid in rows)


def indexes() -> tuple[ipranges.AddressIndex, ipranges.AddressIndex]:
    """The (networks, ip2asn) indexes of this process, rebuilt when the data changed."""
    key = _versions()
    if _cache["key"] != key:
        with _cache_lock:
            if _cache["key"] != key:
                _cache.update(networks=_network_index(), asn=_asn_index(), key=key)
    return _cache["networks"], _cache["asn"]


def _lookups(ips: set[str], max_age: timedelta, now: datetime) -> dict[str, int]:
    """Cached provider look-ups of these addresses whose company domain is an account's."""
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(ips)):
        rows = db.session.execute(
            select(IpLookup.ip, Account.id).join(Account, Account.domain == IpLookup.company_domain)
            .where(in_list(IpLookup.ip, chunk), IpLookup.fetched_at >= now - max_age))
        found.update(dict(rows.all()))
    return found


def match_address(ip: str, lookups: dict[str, int] | None = None, found_in=None) -> tuple[int, str] | None:
    """``(account id, source)`` for an address, or None; ``found_in``: the indexes, when
    the caller has them at hand (one version check a batch, not one an address)."""
    networks, asn = found_in or indexes()
    account_id = networks.find(ip)
    if account_id is not None:
        return account_id, "network"
    account_id = asn.find(ip)
    if account_id is not None:
        return (account_id, "asn") if account_id > 0 else (-account_id, "asn_name")
    if lookups and ip in lookups:
        return lookups[ip], "lookup"
    return None


def identify(events: list[dict], now: datetime | None = None) -> int:
    """Attach anonymous visits (no contact, email or account) to accounts by their IP;
    returns how many matched. Drops every address when identification is off."""
    cfg = config()
    anonymous = [e for e in events if e.get("ip") and not (e.get("contact_id") or e.get("email")
                                                           or e.get("account_id") or e.get("account_domain"))]
    if not cfg["enabled"]:
        for e in events:
            e.pop("ip", None)
        return 0
    now = now or utcnow()
    lookups = _lookups({e["ip"] for e in anonymous}, timedelta(days=cfg["lookup_cache_days"]), now)
    matched = 0
    wanted = {id(e) for e in anonymous}
    found_in = indexes() if anonymous else None
    for e in events:
        ip = e.pop("ip", None)
        if not ip or id(e) not in wanted:
            continue
        props = e.setdefault("properties", {})
        found = match_address(ip, lookups, found_in)
        if found is None:
            props["ip"] = ip  # kept for a later match, raw_ip_days at most
            continue
        e["account_id"], source = found
        props["ip_match"] = {"source": source, "confidence": CONFIDENCE[source],
                             "network": ipranges.truncate(ip)}
        matched += 1
    return matched


def known_visitors(events: list[dict]) -> None:
    """Events of visitors already known get their contact and account."""
    ids = {e["visitor_id"] for e in events if e.get("visitor_id") and not e.get("contact_id")}
    if not ids:
        return
    known: dict[str, tuple[int, int | None]] = {}
    for chunk in _chunks(sorted(ids)):
        for vid, cid, aid in db.session.execute(select(Visitor.visitor_id, Visitor.contact_id, Visitor.account_id)
                                                .where(in_list(Visitor.visitor_id, chunk))):
            known[vid] = (cid, aid)
    for e in events:
        if e.get("visitor_id") in known and not e.get("contact_id"):
            e["contact_id"], account_id = known[e["visitor_id"]]
            if account_id:
                e["account_id"] = account_id
            e.pop("ip", None)


def stitch(rows: list[dict], now: datetime | None = None) -> set[int]:
    """Record visitors that became known in these stored rows and attribute their earlier
    anonymous visits (within the window); returns the accounts whose events changed."""
    identified: dict[str, tuple[int, int | None]] = {}
    for r in rows:
        vid = r.get("visitor_id")
        if vid and r.get("contact_id"):
            identified[vid] = (r["contact_id"], r.get("account_id"))
    if not identified:
        return set()
    now = now or utcnow()
    window = timedelta(days=config()["stitch_days"])
    _upsert_visitors(identified, now)
    changed: set[int] = set()
    for vid, (contact_id, account_id) in identified.items():
        result = db.session.execute(
            update(Event).where(Event.visitor_id == vid, Event.contact_id.is_(None),
                                Event.occurred_at >= now - window)
            .values(contact_id=contact_id, account_id=account_id, properties=_without_address())
            .execution_options(synchronize_session=False))
        if result.rowcount and account_id:
            changed.add(account_id)
    return changed


def _upsert_visitors(identified: dict[str, tuple[int, int | None]], now: datetime) -> None:
    rows = [{"visitor_id": vid, "contact_id": cid, "account_id": aid, "identified_at": now}
            for vid, (cid, aid) in identified.items()]
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Visitor).values(rows)
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=[Visitor.visitor_id],
        set_={"contact_id": stmt.excluded.contact_id, "account_id": stmt.excluded.account_id,
              "identified_at": stmt.excluded.identified_at}))


def forget_contact(contact_id: int) -> None:
    """Erasure: the person's visitor ids and their visits' link to them are removed."""
    db.session.execute(update(Event).where(Event.contact_id == contact_id, Event.type == "web_visit")
                       .values(contact_id=None, visitor_id=None).execution_options(synchronize_session=False))
    db.session.query(Visitor).filter(Visitor.contact_id == contact_id).delete(synchronize_session=False)


def match_pending(now: datetime | None = None, limit: int = 20_000) -> set[int]:
    """Match recent anonymous visits whose kept address matches now (an admin attached a
    network, loaded ip2asn data or a look-up came back); returns the accounts changed."""
    cfg = config()
    if not cfg["enabled"]:
        return set()
    now = now or utcnow()
    ip = _json_text(Event.properties, "ip")
    rows = db.session.execute(
        select(Event.id, ip, Event.properties).where(
            Event.type == "web_visit", Event.account_id.is_(None), Event.contact_id.is_(None),
            Event.occurred_at >= now - timedelta(days=cfg["raw_ip_days"]), ip.is_not(None))
        .order_by(Event.occurred_at.desc()).limit(limit)).all()
    lookups = _lookups({r[1] for r in rows}, timedelta(days=cfg["lookup_cache_days"]), now)
    changed: set[int] = set()
    found_in = indexes()
    for event_id, address, props in rows:
        found = match_address(address, lookups, found_in)
        if found is None:
            continue
        account_id, source = found
        props = {k: v for k, v in (props or {}).items() if k != "ip"}
        props["ip_match"] = {"source": source, "confidence": CONFIDENCE[source], "network": ipranges.truncate(address)}
        db.session.execute(update(Event).where(Event.id == event_id)
                           .values(account_id=account_id, properties=props)
                           .execution_options(synchronize_session=False))
        changed.add(account_id)
    return changed


def addresses_to_look_up(limit: int = 200, now: datetime | None = None) -> list[str]:
    """Kept addresses of recent unmatched visits that no fresh provider look-up covers,
    most recent first: what the look-up job asks the provider about."""
    cfg = config()
    if not cfg["enabled"]:
        return []
    now = now or utcnow()
    ip = _json_text(Event.properties, "ip")
    recent = (select(ip.label("ip"), func.max(Event.occurred_at).label("last"))
              .where(Event.type == "web_visit", Event.account_id.is_(None), Event.contact_id.is_(None),
                     Event.occurred_at >= now - timedelta(days=cfg["raw_ip_days"]), ip.is_not(None))
              .group_by(ip).subquery())
    fresh = select(IpLookup.ip).where(IpLookup.ip == recent.c.ip,
                                      IpLookup.fetched_at >= now - timedelta(days=cfg["lookup_cache_days"]))
    return list(db.session.execute(select(recent.c.ip).where(~fresh.exists())
                                   .order_by(recent.c.last.desc()).limit(limit)).scalars())


def store_lookups(found: dict[str, dict], now: datetime | None = None) -> None:
    """Cache a provider's answers (``ip -> {name, domain, type}``) and bump the version."""
    now = now or utcnow()
    for ip, company in found.items():
        row = db.session.get(IpLookup, ip) or IpLookup(ip=ip)
        row.company_name, row.company_domain, row.company_type = company["name"], company["domain"], company["type"]
        row.fetched_at = now
        db.session.add(row)
    if found:
        bump("lookups")


def purge_raw_addresses(now: datetime | None = None) -> int:
    """Drop the addresses of unmatched visits older than ``raw_ip_days`` (all of them
    when identification is off); returns how many rows were cleaned."""
    cfg = config()
    now = now or utcnow()
    cutoff = now if not cfg["enabled"] else now - timedelta(days=cfg["raw_ip_days"])
    ip = _json_text(Event.properties, "ip")
    window = [Event.occurred_at < cutoff]
    mark = db.session.get(DataVersion, "ip_purge")
    if mark is not None:  # each run reads only the visits that aged past the cutoff since the last
        window.append(Event.occurred_at >= mark.changed_at - timedelta(days=1))
    else:
        mark = DataVersion(name="ip_purge", version=0)
        db.session.add(mark)
    mark.version += 1
    mark.changed_at = cutoff
    result = db.session.execute(
        update(Event).where(Event.type == "web_visit", *window, ip.is_not(None))
        .values(properties=_without_address()).execution_options(synchronize_session=False))
    return result.rowcount or 0


def lookup_ip_days(cfg: dict | None = None) -> int:
    """How long a provider look-up keeps the full address it was asked about (settings that
    predate the setting read its default)."""
    cfg = cfg or config()
    return int(cfg.get("lookup_ip_days", settings_service.DEFAULTS["identification"]["lookup_ip_days"]))


def lookup_address_days(cfg: dict | None = None) -> int:
    """How long a look-up's full address is kept: ``lookup_ip_days``, or ``lookup_cache_days``
    when shorter (past it the look-up is no longer used)."""
    cfg = cfg or config()
    return min(lookup_ip_days(cfg), int(cfg["lookup_cache_days"]))


def purge_lookup_addresses(now: datetime | None = None, batch: int = 1000) -> int:
    """Replace the full address of provider look-ups older than ``lookup_ip_days`` (or
    ``lookup_cache_days`` when shorter: past it the look-up is no longer used; all of them
    when identification is off) by its truncated network (IPv4 /24, IPv6 /48), keeping
    the company found (its name, domain, and so the account with that domain). Look-ups of
    one network merge into one row, the newest answer kept. Returns how many addresses
    were dropped.

    A truncated row (its key holds a ``/``) is never an address a visit is matched by: it
    only records which company answered for the network.
    """
    cfg = config()
    now = now or utcnow()
    cutoff = now if not cfg["enabled"] else now - timedelta(days=lookup_address_days(cfg))
    dropped = 0
    while True:
        rows = db.session.execute(
            select(IpLookup).where(IpLookup.fetched_at < cutoff, ~IpLookup.ip.contains("/"))
            .order_by(IpLookup.fetched_at).limit(batch)).scalars().all()
        if not rows:
            return dropped
        for row in rows:
            network = ipranges.truncate(row.ip) or "unknown/0"
            kept = db.session.get(IpLookup, network)
            if kept is None:
                kept = IpLookup(ip=network, fetched_at=row.fetched_at)
                db.session.add(kept)
            if kept.company_domain is None or row.fetched_at >= kept.fetched_at:
                kept.company_name, kept.company_domain = row.company_name, row.company_domain
                kept.company_type, kept.fetched_at = row.company_type, row.fetched_at
            db.session.delete(row)
            dropped += 1
        db.session.flush()


def _without_address():
    """The event's properties less the kept address (an SQL expression)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return Event.properties.op("-")(text("'ip'"))
    return func.json_remove(Event.properties, "$.ip")


def _json_text(column, key: str):
    if db.session.get_bind().dialect.name == "postgresql":
        return column.op("->>")(key)
    return func.json_extract(column, f"$.{key}")


def _chunks(items, size: int = 1000):
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]
