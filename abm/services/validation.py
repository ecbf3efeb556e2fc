"""Input shapes checked with JSON Schema, problems reported per field.

The same schemas document the API (OpenAPI 3.1 is JSON Schema 2020-12), so what
the document says a body may hold is exactly what the server accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jsonschema import Draft202012Validator

from abm.errors import ValidationError


def _path(error) -> str:
    parts = list(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return ".".join(str(p) for p in [*parts, missing] if p != "")
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def _message(error) -> str:
    if error.validator == "required":
        return "is required"
    if error.validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"must be {wanted}, not {type(error.instance).__name__.replace('NoneType', 'null')}"
    return error.message


def problems(schema: dict, data) -> list[dict]:
    """Every problem of ``data`` against ``schema`` as ``{"path", "message"}``, unknown fields first."""
    validator = Draft202012Validator(schema)
    out = []
    for error in sorted(validator.iter_errors(data), key=lambda e: (e.validator != "additionalProperties",
                                                                       [str(p) for p in e.absolute_path])):
        if error.validator == "additionalProperties":
            known = set(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - known):
                path = ".".join(str(p) for p in [*error.absolute_path, extra])
                out.append({"path": path, "message": "unknown field"})
            continue
        out.append({"path": _path(error), "message": _message(error)})
    return out


def check(schema: dict, data) -> None:
    """Raise ValidationError (422) listing every problem of ``data``."""
    found = problems(schema, data)
    if found:
        raise ValidationError(found)


def parse_time(value, path: str) -> datetime:
    """An ISO 8601 time; a time without an offset is taken as UTC. Returned in UTC."""
    if isinstance(value, datetime):
        at = value
    else:
        try:
            at = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValidationError([{"path": path, "message": f"{value!r} is not an ISO 8601 time "
                                                             "(e.g. 2026-11-23T09:30:00Z)"}]) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with its offset, or None."""
    return value.astimezone(UTC).isoformat() if value is not None else None


def column_string(column, **extra) -> dict:
    """The JSON Schema of a string stored in ``column`` (a model's ``String(n)`` column):
    its ``maxLength`` is the column's, so what the document accepts fits the table."""
    length = getattr(column.type, "length", None)
    return {"type": "string", **({"maxLength": length} if length else {}), **extra}


def too_long(values: dict, columns: dict) -> list[dict]:
    """``{"path", "message"}`` for each string in ``values`` longer than its column in
    ``columns`` (field name -> model column)."""
    found = []
    for field, column in columns.items():
        length = getattr(column.type, "length", None)
        value = values.get(field)
        if length and isinstance(value, str) and len(value) > length:
            found.append({"path": field, "message": f"is longer than {length} characters ({len(value):,})"})
    return found


def nul_path(value, path: str = "") -> str | None:
    """The path of the first string (key or value) in ``value`` holding a NUL character,
    which PostgreSQL cannot store; None when there is none."""
    if isinstance(value, str):
        return (path or "(body)") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return where
            found = nul_path(item, where)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def refuse_nul(value, path: str = "") -> None:
    """Raise a 422 naming the field when ``value`` holds a NUL character anywhere."""
    where = nul_path(value, path)
    if where:
        raise ValidationError([{"path": where, "message": "contains a NUL character (\\u0000), which is not text"}])
