"""Accounts over the API: list, create, upsert by domain, read, update, delete, stage history."""

from __future__ import annotations

from flask import jsonify, url_for

from abm.api import bp
from abm.api._openapi import MANAGERS, PAGE_QUERY, operation, page_of, register_schema
from abm.auth import api_user
from abm.errors import ApiError
from abm.services import account_details, paging
from abm.services import accounts as service

ACCOUNT = register_schema("Account", service.ACCOUNT_SCHEMA)
STAGE_CHANGE = register_schema("StageChange", service.STAGE_CHANGE_SCHEMA)

LIST_QUERY = {
    "stage": {"type": "string", "maxLength": 500, "description": "a stage or a comma list of stages"},
    "tier": {"type": "string", "maxLength": 100, "description": "a tier or a comma list of tiers"},
    "owner": {"type": "string", "maxLength": 500,
              "description": "owner email or id, comma list; `me` for yourself, `none` for unowned"},
    "engagement": {"type": "string", "maxLength": 50, "description": "cold, warm, hot (comma list)"},
    "fit": {"type": "string", "maxLength": 50,
            "description": "ICP fit bands, comma list: high (70 to 100), medium (40 to 69), low (below 40), none"},
    "q": {"type": "string", "maxLength": 300, "description": "part of the name or domain"},
    "sort": {"type": "string", "maxLength": 50, "default": "-score",
             "description": "name, domain, score, stage, created_at, updated_at; prefix - for descending"},
    **PAGE_QUERY,
}


def source() -> str:
    return f"api:{api_user().email}"


@bp.get("/accounts")
@operation("List accounts (an AE's own accounts come first)", query=LIST_QUERY,
           responses={200: ("One page of accounts", page_of(ACCOUNT))})
def list_accounts(query):
    user = api_user()
    filters = {k: query[k] for k in service.FILTERS if k in query}
    rows, next_cursor = service.list_accounts(
        filters, query.get("sort") or "-score", query.get("cursor"), query.get("limit", paging.DEFAULT_LIMIT),
        first_owner_id=user.id if user.role == "ae" else None, me=user.id)
    return jsonify(items=[service.serialize_account(a) for a in rows], next_cursor=next_cursor)


@bp.post("/accounts")
@operation("Create an account", roles=MANAGERS, body=service.CREATE_SCHEMA,
           responses={201: ("The new account", ACCOUNT),
                      409: "an account has this domain: `error.id` is its id"})
def create_account(body):
    account = service.create(body, source=source(), actor=api_user())
    resp = jsonify(service.serialize_account(account, with_counts=True))
    resp.headers["Location"] = url_for("api.get_account", account_id=account.id)
    return resp, 201


@bp.put("/accounts/by-domain/<domain>")
@operation("Create or update the account of a domain (fields not sent are left as they are)",
           roles=MANAGERS, body=service.UPDATE_SCHEMA,
           responses={200: ("The updated account", ACCOUNT), 201: ("The new account", ACCOUNT)})
def upsert_account(domain, body):
    account, created = service.upsert_by_domain(domain, body, source=source(), actor=api_user())
    return jsonify(service.serialize_account(account, with_counts=True)), 201 if created else 200


@bp.get("/accounts/<int:account_id>")
@operation("An account with its owner, score, engagement and counts",
           responses={200: ("The account", ACCOUNT)})
def get_account(account_id):
    return jsonify(service.serialize_account(service.get(account_id), with_counts=True))


@bp.patch("/accounts/<int:account_id>")
@operation("Change an account (AE: stage and notes of their own accounts only)", body=service.UPDATE_SCHEMA,
           description="A changed `stage` is recorded in the stage history with the source `api:<your email>`.",
           responses={200: ("The account", ACCOUNT), 409: "another account has this domain"})
def patch_account(account_id, body):
    user = api_user()
    account = service.get(account_id)
    if user.role == "ae":
        if account.owner_id != user.id:
            raise ApiError(403, "an account executive may change only the accounts they own")
        other = sorted(set(body) - service.AE_FIELDS)
        if other:
            raise ApiError(403, f"an account executive may change only stage and notes, not {', '.join(other)}",
                           [{"path": k, "message": "not allowed for your role"} for k in other])
    account = service.update(account, body, source=source(), actor=user)
    return jsonify(service.serialize_account(account, with_counts=True))


@bp.delete("/accounts/<int:account_id>")
@operation("Delete an account with its contacts, history and events", roles=MANAGERS,
           responses={204: "deleted"})
def delete_account(account_id):
    service.delete(service.get(account_id), actor=api_user())
    return "", 204


@bp.get("/accounts/<int:account_id>/stages")
@operation("The stage history of an account, newest first", query=PAGE_QUERY,
           responses={200: ("One page of stage changes", page_of(STAGE_CHANGE))})
def account_stages(account_id, query):
    service.get(account_id)
    rows, next_cursor = account_details.stage_page(account_id, query.get("cursor"),
                                                   query.get("limit", paging.DEFAULT_LIMIT))
    return jsonify(items=[service.serialize_stage_change(s) for s in rows], next_cursor=next_cursor)

