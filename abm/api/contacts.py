"""Contacts over the API: list, create, read, update, and the GDPR erase."""

from __future__ import annotations

from flask import jsonify, url_for

from abm.api import bp
from abm.api._openapi import MANAGERS, PAGE_QUERY, operation, page_of, register_schema
from abm.auth import api_user
from abm.services import contacts as service
from abm.services import paging

CONTACT = register_schema("Contact", service.CONTACT_SCHEMA)

LIST_QUERY = {
    "account_id": {"type": "integer", "minimum": 1, "description": "the contacts of one account"},
    "role": {"type": "string", "maxLength": 300, "description": "a buying role or a comma list of them"},
    "q": {"type": "string", "maxLength": 300, "description": "part of the email, name or title"},
    **PAGE_QUERY,
}


@bp.get("/contacts")
@operation("List contacts (an AE's accounts' contacts come first)", query=LIST_QUERY,
           responses={200: ("One page of contacts", page_of(CONTACT))})
def list_contacts(query):
    user = api_user()
    filters = {k: query[k] for k in service.FILTERS if k in query}
    rows, next_cursor = service.list_contacts(filters, query.get("cursor"), query.get("limit", paging.DEFAULT_LIMIT),
                                              first_owner_id=user.id if user.role == "ae" else None)
    return jsonify(items=[service.serialize_contact(c) for c in rows], next_cursor=next_cursor)


@bp.post("/contacts")
@operation("Create a contact", roles=MANAGERS, body=service.CREATE_SCHEMA,
           description="The account is `account_id`, `account_domain`, or else the account of the email's "
                       "company domain when there is one. An erased (suppressed) address is a 422.",
           responses={201: ("The new contact", CONTACT), 409: "a contact has this email: `error.id` is its id"})
def create_contact(body):
    contact = service.create(body, actor=api_user())
    resp = jsonify(service.serialize_contact(contact))
    resp.headers["Location"] = url_for("api.get_contact", contact_id=contact.id)
    return resp, 201


@bp.get("/contacts/<int:contact_id>")
@operation("A contact", responses={200: ("The contact", CONTACT)})
def get_contact(contact_id):
    return jsonify(service.serialize_contact(service.get(contact_id)))


@bp.patch("/contacts/<int:contact_id>")
@operation("Change a contact", roles=MANAGERS, body=service.UPDATE_SCHEMA,
           responses={200: ("The contact", CONTACT), 409: "another contact has this email"})
def patch_contact(contact_id, body):
    return jsonify(service.serialize_contact(service.update(service.get(contact_id), body, actor=api_user())))


@bp.delete("/contacts/<int:contact_id>")
@operation("Erase a person (GDPR)", roles=MANAGERS,
           description="Removes the person's personal data everywhere (contact fields, events' email and "
                       "properties, touches' content, alerts), keeps counts, and puts the email's SHA-256 on "
                       "the suppression list so it is never imported or contacted again.",
           responses={204: "erased"})
def erase_contact(contact_id):
    service.erase(service.get(contact_id), actor=api_user())
    return "", 204
