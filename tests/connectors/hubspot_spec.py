"""HubSpot's published request shapes, read from its official SDK (``hubspot-api-client``).

The SDK's models are generated from HubSpot's OpenAPI documents: ``openapi_types`` gives
each field's type, ``attribute_map`` its JSON name, and a setter refuses ``None`` for a
required field. :func:`violations` checks a JSON body against a model strictly: unknown
fields, wrong types (``sorts`` is a list of strings, not of objects), missing required
fields. The fake HubSpot (fakes/hubspot.py) refuses a request with any violation.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from hubspot.crm.associations.v4.models import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies.models import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot.crm.objects.notes.models import BatchInputSimplePublicObjectBatchInputForCreate
from hubspot.crm.objects.tasks.models import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInputForCreate,
)

#: Fields the published CRM search spec requires although SDK 12's model leaves them
#: optional (PublicObjectSearchRequest: "required": [filterGroups, sorts, properties, limit, after]).
SEARCH_REQUIRED = {"filterGroups", "sorts", "properties", "limit", "after"}

#: The model each request the connector makes must match, by (method, path pattern).
MODELS: list[tuple[str, re.Pattern[str], type, set[str]]] = [
    ("POST", re.compile(r"^/crm/v3/objects/(companies|deals)/search$"), PublicObjectSearchRequest, SEARCH_REQUIRED),
    ("POST", re.compile(r"^/crm/v4/associations/deals/companies/batch/read$"),
     BatchInputPublicFetchAssociationsBatchRequest, set()),
    ("POST", re.compile(r"^/crm/v3/objects/companies/batch/read$"), BatchReadInputSimplePublicObjectId, set()),
    ("POST", re.compile(r"^/crm/v3/objects/companies/batch/update$"), BatchInputSimplePublicObjectBatchInput, set()),
    ("POST", re.compile(r"^/crm/v3/objects/tasks$"), SimplePublicObjectInputForCreate, set()),
    ("POST", re.compile(r"^/crm/v3/objects/tasks/batch/upsert$"), BatchInputSimplePublicObjectBatchInputUpsert,
     {"inputs"}),
    ("POST", re.compile(r"^/crm/v3/objects/notes/batch/create$"), BatchInputSimplePublicObjectBatchInputForCreate,
     set()),
]


def model_for(method: str, path: str) -> tuple[type, set[str]] | None:
    for m, pattern, model, required in MODELS:
        if m == method and pattern.match(path):
            return model, required
    return None


def violations(data: Any, model: type, required: set[str] = frozenset(), where: str = "$") -> list[str]:
    if not isinstance(data, dict):
        return [f"{where}: expected an object ({model.__name__}), got {type(data).__name__}"]
    names = {json_name: attr for attr, json_name in model.attribute_map.items()}
    found = [f"{where}.{key}: not a field of {model.__name__}" for key in data if key not in names]
    found += [f"{where}.{key}: required by the published spec" for key in sorted(required) if key not in data]
    for key, value in data.items():
        if key in names:
            found += _type_violations(value, model.openapi_types[names[key]], model, f"{where}.{key}")
    try:  # the SDK's own setters, with its client-side validation on: required fields and enums
        model(**{names[k]: v for k, v in data.items() if k in names}, local_vars_configuration=_strict(model))
    except (ValueError, TypeError) as exc:
        found.append(f"{where}: {model.__name__}: {exc}")
    return found


def _strict(model: type) -> Any:
    root = model.__module__.split(".models.", 1)[0]  # hubspot.crm.companies
    config = importlib.import_module(f"{root}.configuration").Configuration()
    config.client_side_validation = True
    return config


def _type_violations(value: Any, spec: str, owner: type, where: str) -> list[str]:
    if value is None:
        return []
    simple = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if spec in simple:
        ok = isinstance(value, simple[spec]) and not (spec == "int" and isinstance(value, bool))
        return [] if ok else [f"{where}: expected {spec}, got {type(value).__name__} {value!r}"]
    if spec == "object":
        return []
    inner = re.fullmatch(r"list\[(.+)\]", spec)
    if inner:
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [v for i, item in enumerate(value) for v in _type_violations(item, inner.group(1), owner, f"{where}[{i}]")]
    inner = re.fullmatch(r"dict[\[(]str, (.+)[\])]", spec)
    if inner:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        return [v for k, item in value.items() for v in _type_violations(item, inner.group(1), owner, f"{where}.{k}")]
    package = importlib.import_module(owner.__module__.rsplit(".", 1)[0])
    return violations(value, getattr(package, spec), where=where)
