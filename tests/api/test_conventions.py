"""The API's conventions: the error form, 413, idempotency keys, times in UTC."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from abm.db import db, utcnow
from abm.models import Account, AuditLog, IdempotencyRecord, StageChange
from abm.services import accounts
from abm.services.idempotency import fingerprint


def _count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _is_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    assert list(r.json) == ["error"]
    err = r.json["error"]
    assert err["code"] == code and isinstance(err["message"], str) and isinstance(err["details"], list)
    assert "Traceback" not in r.get_data(as_text=True)
    return err


def test_unknown_route_method_and_auth_errors(client, api):
    _is_error(client.get("/api/v1/accounts"), 401, "unauthorized")
    assert client.get("/api/v1/accounts").headers["WWW-Authenticate"].startswith("Bearer")
    _is_error(client.get("/api/v1/accounts", headers={"Authorization": "Bearer abm_forged"}), 401, "unauthorized")
    c = api("ae")
    _is_error(c.get("/api/v1/nothing-here"), 404, "not_found")
    r = c.put("/api/v1/accounts")
    _is_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]
    _is_error(c.get("/api/v1/users"), 403, "forbidden")


def test_oversized_body_is_413(app, api):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    c = api("admin")
    r = c.post("/api/v1/accounts", json={"domain": "acme.com", "notes": "x" * 5000})
    _is_error(r, 413, "payload_too_large")
    assert _count(Account) == 0
    assert c.post("/api/v1/accounts", json={"domain": "acme.com", "notes": "x" * 100}).status_code == 201


def test_same_key_same_body_is_done_once(api):
    c = api("manager")
    headers = {"Idempotency-Key": "create-acme-1"}
    body = {"domain": "acme.com", "name": "Acme"}
    first = c.post("/api/v1/accounts", json=body, headers=headers)
    again = c.post("/api/v1/accounts", data=json.dumps(body), content_type="application/json", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count(Account) == 1
    assert _count(AuditLog) == 2  # user.create + one account.create
    # Another user's identical key is theirs alone.
    other = api("manager").post("/api/v1/accounts", json=body, headers=headers)
    assert other.status_code == 409 and other.json["error"]["id"] == first.json["id"]


def test_same_key_other_body_is_422_and_does_nothing(api):
    c = api("admin")
    headers = {"Idempotency-Key": "k1"}
    assert c.post("/api/v1/accounts", json={"domain": "acme.com"}, headers=headers).status_code == 201
    r = c.post("/api/v1/accounts", json={"domain": "globex.com"}, headers=headers)
    err = _is_error(r, 422, "validation_error")
    assert err["details"][0]["path"] == "Idempotency-Key"
    r = c.put("/api/v1/accounts/by-domain/globex.com", json={}, headers=headers)
    _is_error(r, 422, "validation_error")
    assert db.session.execute(select(Account.domain)).scalars().all() == ["acme.com"]
    _is_error(c.post("/api/v1/accounts", json={"domain": "x.com"}, headers={"Idempotency-Key": "k" * 201}),
              422, "validation_error")


def test_patch_and_delete_replay(api):
    c = api("admin")
    aid = c.post("/api/v1/accounts", json={"domain": "acme.com"}).json["id"]
    for _ in range(2):
        r = c.patch(f"/api/v1/accounts/{aid}", json={"stage": "aware"}, headers={"Idempotency-Key": "p"})
        assert r.status_code == 200 and r.json["stage"] == "aware"
    c.patch(f"/api/v1/accounts/{aid}", json={"stage": "engaged"})
    replay = c.patch(f"/api/v1/accounts/{aid}", json={"stage": "aware"}, headers={"Idempotency-Key": "p"})
    assert replay.json["stage"] == "aware" and replay.headers["Idempotent-Replayed"] == "true"
    assert c.get(f"/api/v1/accounts/{aid}").json["stage"] == "engaged"  # the replay changed nothing
    assert _count(StageChange) == 3  # created, aware, engaged
    for _ in range(2):
        r = c.delete(f"/api/v1/accounts/{aid}", headers={"Idempotency-Key": "d"})
        assert r.status_code == 204
    assert c.delete(f"/api/v1/accounts/{aid}", headers={"Idempotency-Key": "d2"}).status_code == 404


def test_first_error_is_replayed_too(api):
    c = api("admin")
    headers = {"Idempotency-Key": "bad"}
    first = c.post("/api/v1/accounts", json={"domain": "acme.com", "stage": "dreaming"}, headers=headers)
    again = c.post("/api/v1/accounts", json={"domain": "acme.com", "stage": "dreaming"}, headers=headers)
    assert first.status_code == again.status_code == 422 and first.json == again.json


def test_key_in_progress_is_409_and_expired_key_is_reusable(api):
    c = api("admin")

    raw = json.dumps({"domain": "acme.com"}).encode()
    db.session.add(IdempotencyRecord(user_id=c.user.id, key="busy", method="POST", path="/api/v1/accounts",
                                     body_hash=fingerprint("POST", "/api/v1/accounts", raw), status=0))
    db.session.commit()
    r = c.post("/api/v1/accounts", data=raw, content_type="application/json", headers={"Idempotency-Key": "busy"})
    _is_error(r, 409, "conflict")
    assert _count(Account) == 0
    db.session.execute(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(days=2)))
    db.session.commit()
    r = c.post("/api/v1/accounts", data=raw, content_type="application/json", headers={"Idempotency-Key": "busy"})
    assert r.status_code == 201 and _count(Account) == 1


def test_server_error_releases_the_key(api, monkeypatch):
    c = api("admin")

    real = accounts.create

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(accounts, "create", broken)
    r = c.post("/api/v1/accounts", json={"domain": "acme.com"}, headers={"Idempotency-Key": "retry-me"})
    err = _is_error(r, 500, "internal_error")
    assert "fire" not in err["message"]
    assert _count(IdempotencyRecord) == 0
    monkeypatch.setattr(accounts, "create", real)
    r = c.post("/api/v1/accounts", json={"domain": "acme.com"}, headers={"Idempotency-Key": "retry-me"})
    assert r.status_code == 201 and _count(Account) == 1


def test_concurrent_twins_with_one_key_do_the_work_once(app, api):
    c = api("admin")
    token = c.environ_base["HTTP_AUTHORIZATION"]
    answers, start = [], threading.Barrier(4)

    def send():
        with app.app_context():
            client = app.test_client()
            start.wait()
            r = client.post("/api/v1/accounts", json={"domain": "acme.com"},
                            headers={"Authorization": token, "Idempotency-Key": "twins"})
            answers.append((r.status_code, r.json))
            db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.session.expire_all()
    assert _count(Account) == 1
    statuses = sorted(s for s, _ in answers)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, answers
    created = [body for s, body in answers if s == 201]
    assert all(body == created[0] for body in created)
    assert all(body["error"]["code"] == "conflict" for s, body in answers if s == 409)
