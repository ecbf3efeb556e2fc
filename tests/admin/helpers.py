"""Shared helpers of the admin tests: log a page client in, read a form as a browser would."""

from __future__ import annotations

from html.parser import HTMLParser

from flask import g


def login(client, user) -> None:
    """Give ``client`` the session of ``user`` (Flask-Login), without the login page.

    The test's app context outlives requests, and Flask-Login caches the user in ``g``:
    forget it, or the next request would still be the previous client's user.
    """
    g.pop("_login_user", None)
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()  # "<id>:<session version>"
        session["_fresh"] = True


class FormReader(HTMLParser):
    """The fields a browser would submit for each form of a page (successful controls only)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._form = None
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"id": a.get("id"), "action": a.get("action"), "method": a.get("method", "get"), "fields": [],
                          "inputs": {}}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input":
            kind = a.get("type", "text")
            self._form["inputs"][a.get("name")] = a
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if a.get("name") and kind not in ("submit", "button"):
                self._form["fields"].append((a["name"], a.get("value", "1" if kind == "checkbox" else "")))
        elif tag == "select":
            self._select = {"name": a.get("name"), "chosen": None, "first": None}
        elif tag == "option" and self._select is not None:
            if self._select["first"] is None:
                self._select["first"] = a.get("value", "")
            if "selected" in a:
                self._select["chosen"] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = {"name": a.get("name"), "text": ""}

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea["text"] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            value = self._select["chosen"] if self._select["chosen"] is not None else self._select["first"]
            self._form["fields"].append((self._select["name"], value or ""))
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form["fields"].append((self._textarea["name"], self._textarea["text"]))
            self._textarea = None


def forms_of(html: str) -> list[dict]:
    reader = FormReader()
    reader.feed(html)
    return reader.forms


def settings_form(html: str) -> dict:
    """The connector settings form of a page."""
    for form in forms_of(html):
        if form["id"] == "connector-form":
            return form
    raise AssertionError("no connector form on the page")
