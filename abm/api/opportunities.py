"""Opportunities entered by hand or by a script (the CRM sync writes its own)."""

from __future__ import annotations

from flask import jsonify

from abm.api import bp
from abm.api._openapi import MANAGERS, operation, register_schema
from abm.auth import api_user
from abm.services import opportunities as service

OPPORTUNITY = register_schema("Opportunity", service.OPPORTUNITY_SCHEMA)


@bp.post("/opportunities")
@operation("Create an opportunity of an account (account_id or account_domain)", roles=MANAGERS,
           body=service.CREATE_SCHEMA,
           responses={201: ("The new opportunity", OPPORTUNITY), 409: "another opportunity has this crm_id"})
def create_opportunity(body):
    return jsonify(service.serialize_opportunity(service.create(body, actor=api_user()))), 201


@bp.patch("/opportunities/<int:opportunity_id>")
@operation("Change an opportunity", roles=MANAGERS, body=service.UPDATE_SCHEMA,
           responses={200: ("The opportunity", OPPORTUNITY), 409: "another opportunity has this crm_id"})
def patch_opportunity(opportunity_id, body):
    opp = service.update(service.get(opportunity_id), body, actor=api_user())
    return jsonify(service.serialize_opportunity(opp))
