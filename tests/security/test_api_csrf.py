"""Finding 1 of issue 13: the REST API took the pages' session cookie without a CSRF
token, and read text/plain bodies as JSON, YAML or CSV, so a plain form on another site
could create an admin. Now a write on the session needs the page's CSRF token in a
header, and a body is read only as its declared Content-Type (else 415)."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from abm.db import db
from abm.models import Event, Playbook, User
from abm.services import connectors
from abm.services import playbooks as playbook_service
from tests.engine.test_api_cli import GOOD

#: What a cross-site ``<form enctype="text/plain">`` sends: ``name=value`` with the
#: JSON split across a field's name and value so that the '=' lands inside a string.
EVIL_USER = b'{"email": "evil@attacker.example", "role": "admin", "password": "hunter2hunter2", "name": "evil="}'
CROSS_SITE = {"Origin": "https://attacker.example", "Referer": "https://attacker.example/win.html"}

PLAYBOOK = GOOD  # key api-pb


def _users() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(User))


def test_a_cross_site_text_plain_form_cannot_create_an_admin(as_role):
    admin = as_role("admin")
    before = _users()
    resp = admin.post("/api/v1/users", data=EVIL_USER, content_type="text/plain", headers=CROSS_SITE)
    assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"
    assert "X-CSRFToken" in resp.json["error"]["message"]
    # as a urlencoded or multipart form too
    for ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        assert admin.post("/api/v1/users", data=EVIL_USER, content_type=ctype, headers=CROSS_SITE).status_code == 403
    assert _users() == before
    assert db.session.scalar(select(User).where(User.email == "evil@attacker.example")) is None


def test_a_session_write_with_json_but_no_token_is_refused(as_role):
    admin = as_role("admin")
    resp = admin.post("/api/v1/users", json={"email": "new@example.com", "role": "ae"})
    assert resp.status_code == 403
    forged = admin.post("/api/v1/users", json={"email": "new@example.com", "role": "ae"},
                        headers={"X-CSRFToken": "not-the-token"})
    assert forged.status_code == 403
    assert _users() == 1


def test_the_pages_scripts_write_with_the_session_and_the_header(as_role, page_token):
    admin = as_role("admin")
    token = page_token(admin)
    created = admin.post("/api/v1/users", json={"email": "new@example.com", "role": "ae"},
                         headers={"X-CSRFToken": token})
    assert created.status_code == 201, created.json
    # reads need no header (they change nothing; the KPI page links its CSV export)
    assert admin.get("/api/v1/users").status_code == 200
    # the right token still does not make a text/plain body readable
    plain = admin.post("/api/v1/users", data=EVIL_USER, content_type="text/plain", headers={"X-CSRFToken": token})
    assert plain.status_code == 415 and plain.json["error"]["code"] == "unsupported_media_type"
    assert _users() == 2


def test_a_bad_bearer_token_is_not_rescued_by_the_session(as_role, page_token):
    admin = as_role("admin")
    resp = admin.post("/api/v1/users", json={"email": "new@example.com", "role": "ae"},
                      headers={"Authorization": "Bearer abm_wrong", "X-CSRFToken": page_token(admin)})
    assert resp.status_code == 401


def test_cross_site_forms_cannot_activate_import_or_send_events(as_role, page_token, tmp_path):
    manager = as_role("manager")
    connectors.create({"type": "log", "name": "log", "settings": {"path": str(tmp_path / "sent.jsonl")},
                       "default": ["email"]})
    playbook_service.apply(PLAYBOOK, "api-pb.yaml", actor_id=manager.user.id)
    db.session.commit()
    attempts = [
        ("/api/v1/playbooks/api-pb/activate", b"x=1", "text/plain"),
        ("/api/v1/playbooks", PLAYBOOK.encode(), "text/plain"),
        ("/api/v1/imports/accounts", b"Domain\nevil.example\n", "text/plain"),
        ("/api/v1/imports/accounts", {"file": (__import__("io").BytesIO(b"Domain\nevil.example\n"), "a.csv")},
         "multipart/form-data"),
        ("/api/v1/events", json.dumps([{"type": "form_fill", "email": "x@y.example"}]).encode(), "text/plain"),
    ]
    for url, data, ctype in attempts:
        resp = manager.post(url, data=data, content_type=ctype, headers=CROSS_SITE)
        assert resp.status_code == 403, (url, ctype, resp.status_code)
    db.session.expire_all()
    assert db.session.scalar(select(Playbook.status).where(Playbook.key == "api-pb")) == "draft"
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0

    # with the page's token, the types each operation reads still hold: text/plain is 415
    token = {"X-CSRFToken": page_token(manager)}
    for url, data, ctype in attempts:
        if ctype == "text/plain":
            resp = manager.post(url, data=data, content_type=ctype, headers=token)
            assert resp.status_code == 415, (url, resp.status_code)
    activated = manager.post("/api/v1/playbooks/api-pb/activate?allow_empty=true", headers=token)
    assert activated.status_code == 200, activated.json


def test_bearer_clients_need_no_csrf_header_and_get_415_for_undeclared_types(api):
    admin = api("admin")
    assert admin.post("/api/v1/users", json={"email": "tok@example.com", "role": "ae"}).status_code == 201
    assert admin.post("/api/v1/users", data=b'{"email": "t2@example.com", "role": "ae"}',
                      content_type="text/plain").status_code == 415
    assert admin.post("/api/v1/imports/accounts", data=b"Domain\nacme.example\n").status_code == 415
    ok = admin.post("/api/v1/imports/accounts", data=b"Domain\nacme.example\n", content_type="text/csv")
    assert ok.status_code == 202, ok.json  # the import runs as a job
    manager = api("manager")
    # a playbook is read as YAML or as JSON; both reach the validator (no connector here: 422)
    for data, ctype in ((PLAYBOOK, "application/yaml"), (json.dumps({"version": 1, "key": "j"}), "application/json")):
        resp = manager.post("/api/v1/playbooks/validate", data=data, content_type=ctype)
        assert resp.status_code == 422 and resp.json["error"]["details"], resp.json
    assert manager.post("/api/v1/playbooks/validate", data=PLAYBOOK, content_type="text/plain").status_code == 415
