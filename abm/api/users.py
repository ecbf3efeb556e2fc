"""Users and their API tokens (admins only)."""

from __future__ import annotations

from flask import jsonify

from abm.api import bp
from abm.api._openapi import ADMIN, PAGE_QUERY, operation, page_of, register_schema
from abm.auth import api_user
from abm.errors import ApiError, Conflict, NotFound, ValidationError
from abm.models import ROLES, User
from abm.services import api_tokens, paging, user_admin
from abm.services import users as users_service
from abm.services.users import UserError, create_user, normalise_email
from abm.services.validation import iso

USER = register_schema("User", {
    "type": "object", "required": ["id", "email", "role"],
    "properties": {"id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"},
                   "role": {"enum": list(ROLES)}, "active": {"type": "boolean"},
                   "timezone": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"}},
})
CREATE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["email", "role"],
    "properties": {"email": {"type": "string", "minLength": 3, "maxLength": 320},
                   "role": {"enum": list(ROLES)},
                   "name": {"type": "string", "maxLength": 200},
                   "password": {"type": "string", "minLength": 8, "maxLength": 200, "writeOnly": True}},
}
UPDATE_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {"timezone": {"type": ["string", "null"], "maxLength": 64,
                                "description": "IANA name, e.g. Europe/Paris; null or empty: the workspace's "
                                               "send-window zone. The weekly digest goes on the user's "
                                               "Monday morning there."}},
}
TOKEN_SCHEMA = {"type": "object", "additionalProperties": False,
                "properties": {"name": {"type": "string", "maxLength": 200}}}
TOKEN = {"type": "object", "required": ["id", "token", "prefix"],
         "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                        "token": {"type": ["string", "null"],
                                  "description": "shown once; only its hash is stored (null in a replay)"},
                        "prefix": {"type": "string"}, "user_id": {"type": "integer"},
                        "created_at": {"type": "string", "format": "date-time"}}}


def serialize_user(user: User) -> dict:
    return {"id": user.id, "email": user.email, "name": user.name, "role": user.role, "active": user.active,
            "timezone": user.timezone, "created_at": iso(user.created_at)}


@bp.get("/users")
@operation("List users", roles=ADMIN, query=PAGE_QUERY, responses={200: ("One page of users", page_of(USER))})
def list_users(query):
    rows, next_cursor = users_service.page(query.get("cursor"), query.get("limit", paging.DEFAULT_LIMIT))
    return jsonify(items=[serialize_user(u) for u in rows], next_cursor=next_cursor)


@bp.post("/users")
@operation("Create a user", roles=ADMIN, body=CREATE_SCHEMA,
           responses={201: ("The new user", USER), 409: "a user has this email"})
def create_user_view(body):
    email = normalise_email(body["email"])
    existing = users_service.by_email(email)
    if existing is not None:
        raise Conflict(f"a user with email {email} exists already (id {existing.id})", extra={"id": existing.id})
    try:
        user = create_user(email=email, role=body["role"], password=body.get("password"),
                           name=body.get("name", ""), actor_id=api_user().id)
    except UserError as exc:
        field = "password" if "password" in str(exc) else "role" if "role" in str(exc) else "email"
        raise ValidationError([{"path": field, "message": str(exc)}]) from None
    return jsonify(serialize_user(user)), 201


def _user_for(user_id: int) -> User:
    """The user ``user_id`` names, for an admin or for that user themselves (any other
    caller is refused before the id is looked up, so ids are not probed)."""
    caller = api_user()
    if caller.role != "admin" and caller.id != user_id:
        raise ApiError(403, "only an admin may read or change another user")
    user = users_service.get(user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    return user


def _update(user: User, body: dict) -> User:
    if "timezone" in body:
        try:
            user_admin.set_timezone(user, body["timezone"], actor_id=api_user().id)
        except UserError as exc:
            raise ValidationError([{"path": "timezone", "message": str(exc)}]) from None
    return user


@bp.get("/users/me")
@operation("The user the token belongs to", responses={200: ("The user", USER)})
def get_me():
    return jsonify(serialize_user(api_user()))


@bp.patch("/users/me")
@operation("Change your own time zone", body=UPDATE_SCHEMA, responses={200: ("The user", USER)})
def patch_me(body):
    return jsonify(serialize_user(_update(api_user(), body)))


@bp.get("/users/<int:user_id>")
@operation("A user (admin: anyone; others: themselves only)", responses={200: ("The user", USER)})
def get_user(user_id):
    return jsonify(serialize_user(_user_for(user_id)))


@bp.patch("/users/<int:user_id>")
@operation("Change a user's time zone (admin: anyone; others: themselves only)", body=UPDATE_SCHEMA,
           responses={200: ("The user", USER)})
def patch_user(user_id, body):
    return jsonify(serialize_user(_update(_user_for(user_id), body)))


@bp.post("/users/<int:user_id>/tokens")
@operation("Issue an API token for a user; the token is in this answer only", roles=ADMIN, body=TOKEN_SCHEMA,
           description="Only the token's hash is stored: a replay of this request (same Idempotency-Key) "
                       "answers with `token` null.",
           secret_fields=("token",), responses={201: ("The token", TOKEN)})
def issue_user_token(user_id, body):
    user = users_service.get(user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    row, token = api_tokens.issue(user, body.get("name", ""), api_user().id)
    return jsonify(id=row.id, name=row.name, token=token, prefix=row.prefix, user_id=user.id,
                   created_at=iso(row.created_at)), 201
