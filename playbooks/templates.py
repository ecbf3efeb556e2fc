"""Rendering the templates of a playbook: sandboxed Jinja2, StrictUndefined.

``subject``, ``body``, ``text``, ``message``, ``title`` and webhook payload strings are
templates. A name that does not exist is an error (:class:`TemplateError`), never a
blank in a customer's inbox. HTML bodies are autoescaped; everything else is not.

The context (see :func:`build_context`): ``account`` (its fields, ``score``, ``stage``,
``owner``), ``contact`` (email steps only), ``playbook`` (``key``, ``name``,
``product``), and in emails ``unsubscribe_url`` and ``view_in_browser_url``.
"""

from __future__ import annotations

import difflib
import html as html_lib
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import StrictUndefined

from connectors.email_text import html_to_text, list_unsubscribe_headers
from playbooks import sandbox
from playbooks.model import AlertStep, AudienceStep, EmailStep, Playbook, Step, TaskStep, WebhookStep


class TemplateError(Exception):
    """A template that cannot be rendered. ``message`` says what, ``line`` (1-based,
    within the template, or None) where; ``limit`` names the sandbox limit that was hit
    (``output``, ``loop iterations``, ``time``, ``number size``), None for other errors."""

    def __init__(self, message: str, line: int | None = None, limit: str | None = None):
        super().__init__(message if line is None else f"{message} (template line {line})")
        self.message = message
        self.line = line
        self.limit = limit


def _environment(autoescape: bool) -> sandbox.BoundedSandbox:
    return sandbox.BoundedSandbox(undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=True)


_ENVIRONMENTS = {False: _environment(False), True: _environment(True)}


@lru_cache(maxsize=512)
def _compile(source: str, autoescape: bool) -> jinja2.Template:
    template = _ENVIRONMENTS[autoescape].from_string(source)
    template.abm_globals = dict(template.globals)  # the names every render starts from
    return template


def _run(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """``template.render(context)`` without its per-call copies: the context is the
    template's globals overlaid with ``context`` (what ``render`` builds), made once
    here and handed to Jinja as the render's own; the output is counted as it comes.
    Errors propagate unchanged (``render`` only rewrites their traceback)."""
    names = {**template.abm_globals, **context}
    parts, size = [], 0
    for part in template.root_render_func(template.new_context(names, shared=True)):
        size += len(part)
        if size > sandbox.MAX_OUTPUT_CHARS:
            raise sandbox.LimitExceeded("output", f"the template's output is longer than "
                                                  f"{sandbox.MAX_OUTPUT_CHARS:,} characters")
        parts.append(part)
    return template.environment.concat(parts)


def check_syntax(template_source: str) -> None:
    """Raise :class:`TemplateError` if the source does not parse."""
    try:
        _compile(template_source, False)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", exc.lineno) from None


def render(template_source: str, context: Mapping[str, Any], autoescape: bool = False) -> str:
    """Render ``template_source`` with ``context`` in the sandbox.

    ``autoescape=True`` for HTML bodies. Raises :class:`TemplateError` for a syntax
    error, an undefined name or attribute, a sandbox violation, or any error the
    template's own expressions raise (a filter on the wrong type, a division by zero).
    """
    try:
        template = _compile(template_source, autoescape)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", exc.lineno) from None
    try:
        with sandbox.budget():
            return _run(template, context)
    except sandbox.LimitExceeded as exc:
        raise TemplateError(exc.message, _template_line(exc), exc.limit) from None
    except RecursionError:
        raise TemplateError("the template calls itself too deeply (a macro that never stops?)",
                            limit="recursion") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(_explain_undefined(str(exc.message), template_source, context)) from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(str(exc.message or exc)) from None
    except Exception as exc:  # noqa: BLE001 - a template's own expression failed
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None


def _template_line(exc: BaseException) -> int | None:
    """The template line the innermost template frame of ``exc``'s traceback was on."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


_NO_ATTRIBUTE = re.compile(r"^'(.+)' has no attribute '([^']+)'$")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)+")


def _explain_undefined(message: str, source: str, context: Mapping[str, Any]) -> str:
    """Turn Jinja's "'dict object' has no attribute 'nmae'" into a message that names
    the value (``account.owner``) and suggests the closest field."""
    match = _UNDEFINED.match(message)
    if match:
        name = match.group(1)
        close = difflib.get_close_matches(name, list(context), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (available: {', '.join(sorted(context))})"
        return f"'{name}' is undefined{hint}"
    match = _NO_ATTRIBUTE.match(message)
    if match:
        return _missing_field(match.group(2), source, context) or message
    return message


def _missing_field(attribute: str, source: str, context: Mapping[str, Any]) -> str | None:
    """The message for the first ``a.b.attribute`` in ``source`` whose ``a.b`` has no
    ``attribute``: the fields it has (and the closest), or what kind of value it is."""
    for found in _DOTTED.finditer(source):
        parts = [part.strip() for part in found.group(0).split(".")]
        for end in range(1, len(parts)):
            if parts[end] != attribute:
                continue
            owner, value = ".".join(parts[:end]), _lookup(context, parts[:end])
            if value is _ABSENT:
                continue
            if isinstance(value, Mapping):
                if attribute in value:
                    continue
                fields = [str(key) for key in value]
                close = difflib.get_close_matches(attribute, fields, n=1)
                if close:
                    hint = f"; did you mean '{close[0]}'?"
                else:
                    hint = f" (fields: {', '.join(sorted(fields))})" if fields else " (it has none)"
                return f"{owner} has no field '{attribute}'{hint}"
            return f"{owner} is {_kind(value)}, not a record: it has no field '{attribute}'"
    return None


_ABSENT = object()


def _lookup(context: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = context
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def build_context(
    playbook: Playbook | Mapping[str, Any],
    account: Mapping[str, Any],
    contact: Mapping[str, Any] | None = None,
    unsubscribe_url: str | None = None,
    view_in_browser_url: str | None = None,
) -> dict:
    """The template context. ``contact`` and the URLs are set only when given (emails)."""
    if isinstance(playbook, Playbook):
        info = {"key": playbook.key, "name": playbook.name, "product": playbook.product}
    else:
        info = {"key": playbook.get("key"), "name": playbook.get("name"), "product": playbook.get("product")}
    context: dict[str, Any] = {"account": dict(account), "playbook": info}
    if contact is not None:
        context["contact"] = dict(contact)
    if unsubscribe_url is not None:
        context["unsubscribe_url"] = unsubscribe_url
    if view_in_browser_url is not None:
        context["view_in_browser_url"] = view_in_browser_url
    return context


_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


def ensure_unsubscribe_link(html: str, unsubscribe_url: str) -> str:
    """``html`` with a visible unsubscribe link appended when it has none.

    A body "has one" when ``unsubscribe_url`` already appears in it (the template used
    ``{{ unsubscribe_url }}``). Otherwise a small footer paragraph with the link is put
    before ``</body>``, or at the end when there is no ``</body>``.
    """
    if unsubscribe_url in html or html_lib.escape(unsubscribe_url) in html:
        return html
    footer = (
        '<p style="font-size:12px;color:#6b7280;margin-top:24px">'
        "You are receiving this because of your company's interest in our products. "
        f'<a href="{html_lib.escape(unsubscribe_url)}">Unsubscribe</a></p>'
    )
    matches = list(_BODY_CLOSE.finditer(html))
    if not matches:
        return html + "\n" + footer
    match = matches[-1]
    return html[: match.start()] + footer + "\n" + html[match.start():]


def _render_json(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [_render_json(item, context) for item in value]
    if isinstance(value, dict):
        return {key: _render_json(item, context) for key, item in value.items()}
    return value


def render_touch(
    step: Step,
    playbook: Playbook,
    account: Mapping[str, Any],
    contact: Mapping[str, Any] | None = None,
    *,
    unsubscribe_url: str | None = None,
    view_in_browser_url: str | None = None,
    now: datetime | None = None,
) -> dict:
    """The rendered payload of one touch, in the form ``connectors.base.Touch`` expects.

    - email (``contact`` and ``unsubscribe_url`` required): ``subject``, ``html`` (with
      a visible unsubscribe link ensured), ``text`` (the step's text template, or
      derived from the HTML), ``from`` (or None), ``headers`` (List-Unsubscribe),
      ``unsubscribe_url``.
    - audience: ``list``, ``action``.  - alert: ``to``, ``message``.
    - task: ``to``, ``title``, ``due`` (ISO date of ``now + due``, or None).
    - webhook: ``payload`` (every string rendered).

    ``view_in_browser_url`` defaults to ``""`` (the product serves no web view yet).
    ``to`` is returned as the step says (``owner`` or an email): resolving the owner
    to an address is the engine's job. Raises :class:`TemplateError`.
    """
    if isinstance(step, EmailStep):
        if contact is None or unsubscribe_url is None:
            raise ValueError("an email touch needs a contact and an unsubscribe_url")
        context = build_context(playbook, account, contact, unsubscribe_url, view_in_browser_url or "")
        html = ensure_unsubscribe_link(render(step.body, context, autoescape=True), unsubscribe_url)
        text = render(step.text, context) if step.text else html_to_text(html)
        return {
            # A subject is one header line: rendered newlines would inject headers.
            "subject": re.sub(r"\s*[\r\n]+\s*", " ", render(step.subject, context)).strip(),
            "html": html,
            "text": text,
            "from": step.sender,
            "headers": list_unsubscribe_headers(unsubscribe_url),
            "unsubscribe_url": unsubscribe_url,
        }
    context = build_context(playbook, account)
    if isinstance(step, AudienceStep):
        return {"list": step.list, "action": step.action}
    if isinstance(step, AlertStep):
        return {"to": step.to, "message": render(step.message, context)}
    if isinstance(step, TaskStep):
        due = None
        if step.due is not None:
            due = ((now or datetime.now().astimezone()) + step.due).date().isoformat()
        return {"to": step.to, "title": render(step.title, context), "due": due}
    if isinstance(step, WebhookStep):
        return {"payload": _render_json(step.payload, context)}
    raise ValueError(f"a {step.kind} step makes no touches")


__all__ = [
    "TemplateError", "render", "check_syntax", "build_context", "ensure_unsubscribe_link",
    "render_touch"
]
