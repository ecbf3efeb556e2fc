"""Checks of the texts an email or message step renders: inline templates and template
files rendered against the workspace's sample account and contact, within the sandbox's
limits, and sender addresses; shared by the steps and their A/B variants."""

from __future__ import annotations

import re
from email.utils import parseaddr

from playbooks import sandbox, templates
from playbooks._check import Checker, Node

_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


def template_text(chk: Checker, node: Node, html: bool = False, email: bool = False) -> str | None:
    """A template string, rendered against the sample account (and contact) now."""
    value = chk.text(node)
    if value is not None and not renders(chk, node, value, email, html, "template error"):
        return None
    return value


def renders(chk: Checker, node: Node, source: str, email: bool, html: bool, what: str) -> bool:
    """Whether ``source`` renders against the sample context, within the sandbox's
    limits and the time left for the whole validation (``sandbox.deadline``); reports
    the error at ``node`` otherwise. Once that time is spent, the first template left
    unrendered says so and the others are not tried."""
    if sandbox.deadline_passed():
        stopped(chk, node)
        return False
    try:
        templates.render(source, chk.template_context(email), autoescape=html)
    except templates.TemplateError as exc:
        chk.out_of_time = chk.out_of_time or (exc.limit == "time" and sandbox.deadline_passed())
        chk.error(node, f"{what}: {exc}")
        return False
    return True


def stopped(chk: Checker, node: Node) -> None:
    """Report, once, that the validation's time ran out at ``node``."""
    if not chk.out_of_time:
        chk.out_of_time = True
        chk.error(node, f"validation stopped here: the playbook took longer than the "
                        f"{sandbox.deadline_seconds():g} s altogether (time limit) that validating it may take; "
                        "make its templates simpler or the playbook smaller")


def template_file(chk: Checker, node: Node, name: str) -> str | None:
    if not _TEMPLATE_NAME.match(name) or ".." in name.split("/"):
        chk.error(node, f"'{name}' is not a template file name (a name such as intro.html under "
                        "templates/email/)")
        return None
    try:
        text = chk.workspace.template_loader(name)
    except Exception as exc:  # noqa: BLE001 - a loader failing is a located error too
        chk.error(node, f"template file '{name}' could not be read: {exc}")
        return None
    if text is None:
        chk.error(node, f"template file '{name}' not found in templates/email/")
        return None
    if not isinstance(text, str):
        chk.error(node, f"template file '{name}' could not be read as text")
        return None
    if not renders(chk, node, text, True, True, f"in template file '{name}'"):
        return None
    return text


def sender(chk: Checker, node: Node) -> str | None:
    value = chk.text(node)
    if value is None:
        return None
    _, address = parseaddr(value)
    if not address or "@" not in address or " " in address or "." not in address.split("@")[-1]:
        chk.error(node, f"'{value}' is not a sender address (write 'news@company.com' or "
                        "'Dana Reyes <dana@company.com>')")
        return None
    return value


def email_body(chk: Checker, entries: dict[str, Node]) -> tuple[str | None, str | None]:
    """(the HTML source, the template file's name or None) of an email or a variant with
    ``template`` (a file) or ``body`` (inline); (None, None) when it has neither or
    either is wrong (reported), or both (reported)."""
    if "template" in entries and "body" in entries:
        chk.error(entries["body"], "write either 'template' (a file) or 'body' (inline), not both")
    elif "template" in entries:
        name = chk.text(entries["template"])
        if name is not None:
            return template_file(chk, entries["template"], name), name
    elif "body" in entries:
        return template_text(chk, entries["body"], html=True, email=True), None
    return None, None
