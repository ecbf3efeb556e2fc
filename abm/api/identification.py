"""In-market data over the API: the networks attached to an account, autonomous systems
mapped to accounts and suggested matches by name (the ip2asn file itself is loaded with
``abm identify load-ip2asn``: it is large), and each account's ICP fit with its reasons."""

from __future__ import annotations

from flask import jsonify

from abm.api import bp
from abm.api._openapi import ADMIN, MANAGERS, operation, register_schema
from abm.services import accounts as accounts_service
from abm.services import fit as fit_service
from abm.services import networks as service

NETWORK = register_schema("AccountNetwork", {
    "type": "object", "required": ["id", "account_id", "network", "source"],
    "properties": {"id": {"type": "integer"}, "account_id": {"type": "integer"},
                   "network": {"type": "string", "description": "a CIDR block, or first-last"},
                   "source": {"type": "string"}}})
ASN_ACCOUNT = register_schema("AsnAccount", {
    "type": "object", "required": ["id", "account_id"],
    "properties": {"id": {"type": "integer"}, "account_id": {"type": "integer"},
                   "asn": {"type": ["integer", "null"]}, "org_name": {"type": ["string", "null"]}}})
_NETWORKS_BODY = {"type": "object", "additionalProperties": False, "required": ["networks"],
                  "properties": {"networks": {"type": "array", "minItems": 1, "maxItems": 1000,
                                              "items": {"type": "string", "minLength": 1, "maxLength": 100}}}}
_ASN_BODY = {"type": "object", "additionalProperties": False, "required": ["account_id"],
             "properties": {"account_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                            "asn": {"type": "integer", "minimum": 1, "maximum": 4294967295},
                            "org_name": {"type": "string", "minLength": 1, "maxLength": 300}}}
_SUGGESTION = {"type": "object", "required": ["account_id", "account", "domain", "asn", "description"],
               "properties": {"account_id": {"type": "integer"}, "account": {"type": "string"},
                              "domain": {"type": "string"}, "asn": {"type": "integer"},
                              "description": {"type": "string"}}}


def _network(row) -> dict:
    return {"id": row.id, "account_id": row.account_id, "network": row.network, "source": row.source}


@bp.get("/accounts/<int:account_id>/networks")
@operation("The IP networks attached to an account", roles=MANAGERS, tags=["identification"],
           responses={200: ("The networks", {"type": "array", "items": NETWORK})})
def list_networks(account_id):
    return jsonify([_network(n) for n in service.list_networks(account_id)])


@bp.post("/accounts/<int:account_id>/networks")
@operation("Attach IP networks (CIDR blocks or first-last ranges) to an account", roles=ADMIN,
           body=_NETWORKS_BODY, tags=["identification"],
           responses={201: ("The networks added", {"type": "array", "items": NETWORK})})
def add_networks(account_id, body):
    return jsonify([_network(n) for n in service.add_networks(account_id, body["networks"])]), 201


@bp.delete("/accounts/<int:account_id>/networks/<int:network_id>")
@operation("Detach a network from an account", roles=ADMIN, tags=["identification"],
           responses={204: "Detached"})
def remove_network(account_id, network_id):
    service.remove_network(account_id, network_id)
    return "", 204


@bp.post("/asn-accounts")
@operation("Map an autonomous system (by number, or by its ip2asn organisation name) to an account",
           roles=ADMIN, body=_ASN_BODY, tags=["identification"], responses={201: ("The mapping", ASN_ACCOUNT)})
def map_asn(body):
    row = service.map_asn(body["account_id"], body.get("asn"), body.get("org_name"))
    return jsonify({"id": row.id, "account_id": row.account_id, "asn": row.asn, "org_name": row.org_name}), 201


@bp.get("/asn-accounts/suggestions")
@operation("Accounts whose name appears in an autonomous system's organisation name (not yet mapped)",
           roles=ADMIN, tags=["identification"],
           responses={200: ("Suggested matches to confirm", {"type": "array", "items": _SUGGESTION})})
def suggest_asn():
    return jsonify(service.suggest_asn_matches())


@bp.get("/accounts/<int:account_id>/fit")
@operation("Why an account has its ICP fit: the rules it matches and the model's strongest features",
           tags=["fit"], responses={200: ("The fit and its reasons", {"type": "object"})})
def account_fit(account_id):
    return jsonify(fit_service.explain(accounts_service.get(account_id)))


@bp.get("/fit/model")
@operation("The fit model in force: cross-validated AUC, calibration, coefficients (null before one is trained)",
           roles=MANAGERS, tags=["fit"], responses={200: ("The model", {"type": ["object", "null"]})})
def fit_model():
    return jsonify(fit_service.summary())
