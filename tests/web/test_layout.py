"""The layout every page shares: navigation by role, error pages, local assets, escaping,
and the SVG chart macros."""

from __future__ import annotations

import re

from jinja2 import Environment, FileSystemLoader
from sqlalchemy import select

from abm import ROOT
from abm.db import db
from abm.models import Account
from abm.web import _access


def _nav_labels(html: str) -> list[str]:
    nav = re.search(r'<nav class="nav".*?</nav>', html, re.S).group(0)
    return re.findall(r'<a href="[^"]*"[^>]*>([^<]+)</a>', nav)


def test_nav_shows_what_each_role_may_see(pages, as_role):
    for role in ("admin", "manager", "ae"):
        html = as_role(role).get("/").get_data(as_text=True)
        expected = [e.label for e in _access.NAV if role in e.roles and any(
            endpoint in pages.view_functions for endpoint in (e.endpoint, *(f[0] for f in e.fallback)))]
        assert _nav_labels(html) == expected, role
    admin_nav = _nav_labels(as_role("admin").get("/").get_data(as_text=True))
    ae_nav = _nav_labels(as_role("ae").get("/").get_data(as_text=True))
    assert {"Accounts", "My accounts", "Users", "Settings", "Import"} <= set(admin_nav)
    assert "Users" not in ae_nav and "Settings" not in ae_nav and "Import" not in ae_nav
    assert "Accounts" in ae_nav


def test_a_nav_slot_whose_page_does_not_exist_is_hidden_not_broken(pages, as_role, monkeypatch):
    monkeypatch.setattr(_access, "NAV", _access.NAV + (
        _access.NavEntry("later", "Later area", "later.index"),
        _access.NavEntry("mine", "Fallback area", "later.mine", fallback=(("accounts.index", (("tier", "1"),)),)),
    ))
    resp = as_role("admin").get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Later area" not in html
    assert '<a href="/accounts?tier=1">Fallback area</a>' in html


def test_active_nav_entry_is_marked(as_role):
    client = as_role("admin")
    html = client.get("/admin/settings").get_data(as_text=True)
    assert re.search(r'<a href="/admin/settings" class="active" aria-current="page">Settings</a>', html)
    html = client.get("/accounts?owner=me").get_data(as_text=True)
    assert re.search(r'class="active" aria-current="page">My accounts<', html)


def test_forbidden_pages_answer_403_with_the_layout(as_role):
    client = as_role("ae")
    for path in ("/admin/users", "/admin/settings", "/imports"):
        resp = client.get(path)
        assert resp.status_code == 403, path
        html = resp.get_data(as_text=True)
        assert "Not allowed" in html and "Your role (ae) may not open this page" in html and 'class="topbar"' in html
    resp = as_role("manager").get("/admin/users")
    assert resp.status_code == 403


def test_not_found_page_and_no_stack_trace(as_role):
    resp = as_role("ae").get("/accounts/999999")
    assert resp.status_code == 404
    html = resp.get_data(as_text=True)
    assert "Not found" in html and "Traceback" not in html and "Back to the home page" in html


def test_assets_are_served_locally(pages, as_role):
    html = as_role("admin").get("/").get_data(as_text=True)
    sources = re.findall(r'<(?:link|script|img)[^>]+(?:href|src)="([^"]+)"', html)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    client = pages.test_client()
    css = client.get("/static/css/app.css")
    assert css.status_code == 200 and css.mimetype == "text/css" and b"@media" in css.data
    assert client.get("/static/js/app.js").status_code == 200
    assert b"http" not in css.data  # no web fonts or images fetched from elsewhere


def test_user_text_is_escaped(as_role):
    client = as_role("admin")
    db.session.add(Account(name="<script>alert('x')</script>", domain="xss.example", stage="target"))
    db.session.commit()
    html = client.get("/accounts").get_data(as_text=True)
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html


def test_home_page_counts_accounts_by_stage_and_links_to_areas(as_role):
    client = as_role("ae")
    db.session.add_all([Account(name=f"A{i}", domain=f"a{i}.example", stage="aware") for i in range(3)]
                       + [Account(name="Own", domain="own.example", stage="engaged", owner_id=client.user.id,
                                  engagement="hot")])
    db.session.commit()
    html = client.get("/").get_data(as_text=True)
    assert re.search(r"<title>aware: 3</title>", html)
    assert re.search(r"<title>engaged: 1</title>", html)
    assert "Your accounts" in html and "1 hot" in html
    assert 'href="/accounts?stage=aware"' in html
    assert "Your hottest accounts" not in html  # the AE's one account has no score yet
    own = db.session.execute(select(Account).where(Account.domain == "own.example")).scalar_one()
    own.score = 30.0
    db.session.commit()
    html = client.get("/").get_data(as_text=True)
    assert re.search(rf'Your hottest accounts</h2>\s*<ul class="plain">\s*<li><a href="/accounts/{own.id}">Own</a>', html)


# --------------------------------------------------------------------------- charts

def _render(macro: str, *args, **kwargs) -> str:
    module = CHARTS_ENV.get_template("web/_charts.html").make_module()
    return str(getattr(module, macro)(*args, **kwargs))


#: The macros need no app: a plain autoescaping environment, as Flask's, over templates/.
CHARTS_ENV = Environment(loader=FileSystemLoader(str(ROOT / "templates")), autoescape=True)


def test_sparkline_scales_points_into_the_box():
    svg = _render("sparkline", [0, 5, 10], width=100, height=20, label="Score")
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    xs = [float(p.split(",")[0]) for p in points]
    ys = [float(p.split(",")[1]) for p in points]
    assert len(points) == 3
    assert xs == sorted(xs) and xs[0] >= 0 and xs[-1] <= 100
    assert ys[0] > ys[1] > ys[2]  # higher values are drawn higher (smaller y)
    assert 'aria-label="Score: last 10, low 0, high 10"' in svg
    flat = _render("sparkline", [4, 4, None], width=100, height=20)
    assert "polyline" in flat
    empty = _render("sparkline", [], label="Score")
    assert "polyline" not in empty and "no data" in empty


def test_bars_are_proportional_and_escape_labels():
    svg = _render("bars", [("aware", 10), {"label": "<b>x</b>", "value": 5, "href": "/accounts?stage=x"}],
                  width=400, label="Stages")
    widths = [float(w) for w in re.findall(r'class="bar" x="[^"]+" y="[^"]+" width="([^"]+)"', svg)]
    assert widths[0] == 2 * widths[1] > 0
    assert "<b>x</b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
    assert '<a href="/accounts?stage=x">' in svg
    assert "No data yet" in _render("bars", [], label="Nothing")


def test_columns_draw_one_bar_per_value():
    svg = _render("columns", [("Mon", 1), ("Tue", 4), ("Wed", 0)], width=300, height=100, label="Touches")
    heights = [float(h) for h in re.findall(r'class="column"[^>]* height="([^"]+)"', svg)]
    assert len(heights) == 3 and heights[1] == max(heights) and heights[2] == 0
    assert "Mon" in svg and "Wed" in svg


def test_every_page_of_these_areas_needs_a_login(pages):
    """Anonymous requests to any route of the accounts, import, admin and home pages go to
    the login page; none answers with data."""
    client = pages.test_client()
    checked = 0
    for rule in pages.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] not in ("accounts", "imports", "admin", "home"):
            continue
        path = rule.build({arg: 1 for arg in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            resp = client.open(path, method=method)
            assert resp.status_code == 302 and resp.location.startswith("/login?next="), (method, path)
            checked += 1
    assert checked >= 10
