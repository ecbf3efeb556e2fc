"""Who may see a page, where a login may send you next, and the navigation.

Pages use :func:`role_required` (``login_required`` plus a role check that answers
403 with the error page). Every page blueprint of every area uses it, so it lives here
and not in one area's module. The module starts with ``_`` so that the package's
registration loop does not take it for a blueprint module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, request, url_for
from flask_login import current_user, login_required
from werkzeug.routing import BuildError

from abm.labels import event_label
from abm.scoring import driven_by
from abm.services import alert_inbox

ALL_ROLES = ("admin", "manager", "ae")
MANAGERS = ("admin", "manager")


def role_required(*roles: str):
    """Page decorator: log in first (redirect to the login page), then 403 unless the
    user's role is one of ``roles`` (no roles: any logged-in user)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if roles and current_user.role not in roles:
                abort(403, description=f"your role ({current_user.role}) may not open this page; "
                                       f"it needs: {', '.join(roles)}")
            return view(*args, **kwargs)

        guarded = login_required(wrapped)
        guarded.required_roles = roles
        return guarded

    return decorator


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None (no open redirect).

    Accepts only an absolute path ("/accounts?x=1"): no scheme, no host, no
    protocol-relative ``//host``, no backslashes (browsers read ``/\\host`` as a host),
    no control characters.
    """
    if not target or len(target) > 2000:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in target) or "\\" in target:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def endpoint_url(endpoint: str, **values) -> str | None:
    """``url_for(endpoint)`` or None when no such endpoint is registered (yet)."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


@dataclass(frozen=True)
class NavEntry:
    """One slot of the navigation: shown when its endpoint (or a fallback's) exists and
    the role may see it. ``fallback``: further ``(endpoint, args)`` tried in order."""

    key: str
    label: str
    endpoint: str
    roles: tuple[str, ...] = ALL_ROLES
    args: tuple[tuple[str, str], ...] = ()
    fallback: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def url(self) -> str | None:
        for endpoint, args in ((self.endpoint, self.args), *self.fallback):
            url = endpoint_url(endpoint, **dict(args))
            if url is not None:
                return url
        return None


#: The product's navigation, in order. Areas built by other modules appear as soon as a
#: blueprint registers the endpoint named here; until then the slot is simply hidden.
NAV: tuple[NavEntry, ...] = (
    NavEntry("accounts", "Accounts", "accounts.index"),
    NavEntry("my_accounts", "My accounts", "engagement.my_accounts",
             fallback=(("accounts.index", (("owner", "me"),)),)),
    NavEntry("alerts", "Alerts", "alerts.index"),
    NavEntry("playbooks", "Playbooks", "playbooks.index"),
    NavEntry("segments", "Segments", "segments.index"),
    NavEntry("outbox", "Outbox", "outbox.index", MANAGERS),
    NavEntry("engagement", "Engagement", "engagement.index"),
    NavEntry("kpis", "KPIs", "kpis.index"),
    NavEntry("connectors", "Connectors", "connectors.index", MANAGERS),
    NavEntry("imports", "Import", "imports.index", MANAGERS),
    NavEntry("in_market", "In market", "in_market.page", MANAGERS),
    NavEntry("users", "Users", "admin.users", ("admin",)),
    NavEntry("settings", "Settings", "admin.settings", ("admin",)),
)


def _active_key() -> str | None:
    endpoint = request.endpoint or ""
    if endpoint.startswith("accounts."):
        return "my_accounts" if request.args.get("owner") == "me" else "accounts"
    if endpoint == "admin.settings" or endpoint.startswith("admin.settings"):
        return "settings"
    if endpoint.startswith("admin."):
        return "users"
    blueprint = endpoint.partition(".")[0]
    # the entry of this very endpoint, else the area's ".index" entry, else any entry of the area
    same_area = [e for e in NAV if e.endpoint.partition(".")[0] == blueprint]
    if not same_area:
        return None
    return min(same_area, key=lambda e: (e.endpoint != endpoint, not e.endpoint.endswith(".index"))).key


def nav_items() -> list[dict]:
    """The entries the current user may see, with their URL and whether they are active."""
    if not current_user.is_authenticated:
        return []
    active = _active_key()
    items = []
    for entry in NAV:
        if current_user.role not in entry.roles:
            continue
        url = entry.url()
        if url is None:
            continue
        item = {"key": entry.key, "label": entry.label, "url": url, "active": entry.key == active}
        if entry.key in NAV_COUNTS:
            item["count"] = NAV_COUNTS[entry.key](current_user)
        items.append(item)
    return items


def _new_alerts(user) -> int:
    return alert_inbox.count_new(user.id)


#: Numbers shown beside a navigation entry: the user's alerts waiting for them.
NAV_COUNTS = {"alerts": _new_alerts}


def init_layout(app) -> None:
    """Template helpers every page may use: ``nav_items()``, ``endpoint_url()``, ``has_role()``,
    ``driven_by(score_ref, passive_ref)`` (what made a level: abm.scoring)."""

    def has_role(*roles: str) -> bool:
        return current_user.is_authenticated and current_user.role in roles

    app.jinja_env.globals.update(nav_items=nav_items, endpoint_url=endpoint_url, has_role=has_role,
                                 driven_by=driven_by, event_label=event_label)
