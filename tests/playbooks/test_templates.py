"""Template rendering: sandbox, StrictUndefined, autoescape, unsubscribe links, touches."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.email_text import html_to_text, list_unsubscribe_headers
from playbooks import load
from playbooks.templates import (
    TemplateError,
    ensure_unsubscribe_link,
    render,
    render_touch,
)
from playbooks.workspace import SAMPLE_ACCOUNT, SAMPLE_CONTACT, Workspace

URL = "https://abm.example.com/u/tok123"


def test_render_and_strict_undefined():
    assert render("Hi {{ contact.first_name }}", {"contact": {"first_name": "Priya"}}) == "Hi Priya"
    with pytest.raises(TemplateError, match="contact has no field 'frist_name'; did you mean 'first_name'"):
        render("Hi {{ contact.frist_name }}", {"contact": {"first_name": "Priya"}})
    with pytest.raises(TemplateError, match="'acount' is undefined; did you mean 'account'"):
        render("{{ acount.name }}", {"account": {}})


def test_sandbox_blocks_unsafe_attribute_access():
    with pytest.raises(TemplateError, match="not allowed in a template"):
        render("{{ account.__class__.__mro__ }}", {"account": {}})


def test_syntax_error_reports_template_line():
    with pytest.raises(TemplateError) as caught:
        render("line one\n{% if %}\n", {})
    assert caught.value.line == 2
    assert "template line 2" in str(caught.value)


def test_autoescape_only_for_html():
    context = {"account": {"name": "Smith & <Sons>"}}
    assert render("{{ account.name }}", context, autoescape=True) == "Smith &amp; &lt;Sons&gt;"
    assert render("{{ account.name }}", context) == "Smith & <Sons>"


def test_unsubscribe_link_added_before_body_end_when_missing():
    html = "<html><body><p>Hi</p></body></html>"
    result = ensure_unsubscribe_link(html, URL)
    assert f'<a href="{URL}">Unsubscribe</a>' in result
    assert result.index(URL) < result.index("</body>")
    assert ensure_unsubscribe_link("<p>Hi</p>", URL).endswith("Unsubscribe</a></p>")


def test_unsubscribe_link_not_duplicated_when_template_has_one():
    html = f'<p>Hi</p><a href="{URL}">Stop these emails</a>'
    assert ensure_unsubscribe_link(html, URL) == html


def test_unsubscribe_headers_are_one_click_only_over_https():
    headers = list_unsubscribe_headers(URL, mailto="unsub@example.com")
    assert headers["List-Unsubscribe"] == f"<{URL}>, <mailto:unsub@example.com?subject=unsubscribe>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = list_unsubscribe_headers("http://abm.example.com/u/tok123")
    assert plain == {"List-Unsubscribe": "<http://abm.example.com/u/tok123>"}, "RFC 8058: https only"


def test_html_to_text_keeps_links_and_drops_markup():
    text = html_to_text('<html><head><style>p{}</style></head><body><p>Hello <b>you</b></p>'
                        '<p><a href="https://x.example/r">Read</a></p></body></html>')
    assert text == "Hello you\n\nRead (https://x.example/r)\n"


def _example(name: str):
    path = Path(__file__).parents[2] / "playbooks" / "examples" / name
    return load(path.read_text(), name, Workspace.default()).playbook


def test_render_touch_email_from_a_template_file():
    playbook = _example("tier1-security-expansion.yaml")
    account = dict(SAMPLE_ACCOUNT, name="Contoso Payments")
    payload = render_touch(playbook.step("intro"), playbook, account, SAMPLE_CONTACT, unsubscribe_url=URL)
    assert payload["subject"] == "Contoso Payments and API fraud in 2027"
    assert "Hi Priya," in payload["html"]
    assert payload["html"].count(URL) == 1  # the template has its own unsubscribe link
    assert "Hi Priya," in payload["text"] and "<p>" not in payload["text"]
    assert payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert payload["unsubscribe_url"] == URL


def test_render_touch_email_without_link_gets_one():
    playbook = _example("tier1-security-expansion.yaml")
    payload = render_touch(playbook.step("nurture"), playbook, SAMPLE_ACCOUNT, SAMPLE_CONTACT, unsubscribe_url=URL)
    assert f'<a href="{URL}">Unsubscribe</a>' in payload["html"]


def test_render_touch_account_level_kinds():
    handoff = _example("opportunity-handoff.yaml")
    now = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    task = render_touch(handoff.step("create-task"), handoff, SAMPLE_ACCOUNT, now=now)
    assert task == {"to": "owner", "title": "Opportunity at Northwind Bank: book the discovery call",
                    "due": "2026-05-06"}
    hook = render_touch(handoff.step("notify-deal-desk"), handoff, SAMPLE_ACCOUNT)
    assert hook["payload"]["account"] == "Northwind Bank"
    assert hook["payload"]["tags"] == ["abm", "banking"]
    ads = render_touch(handoff.step("stop-prospecting-ads"), handoff, SAMPLE_ACCOUNT)
    assert ads == {"list": "tier1-security", "action": "remove"}
    alert = render_touch(handoff.step("no-champion"), handoff, SAMPLE_ACCOUNT)
    assert alert["to"] == "owner" and alert["message"].startswith("Northwind Bank is an opportunity")


def test_render_touch_raises_template_error_on_a_real_account_missing_a_field():
    handoff = _example("opportunity-handoff.yaml")
    account = {key: value for key, value in SAMPLE_ACCOUNT.items() if key != "domain"}
    with pytest.raises(TemplateError, match="account has no field 'domain'"):
        render_touch(handoff.step("notify-deal-desk"), handoff, account)


def test_render_touch_refuses_flow_steps():
    handoff = _example("opportunity-handoff.yaml")
    with pytest.raises(ValueError, match="makes no touches"):
        render_touch(handoff.steps[5], handoff, SAMPLE_ACCOUNT)


def test_rendered_subject_is_one_line():
    playbook = _example("tier1-security-expansion.yaml")
    account = dict(SAMPLE_ACCOUNT, name="Evil\r\nBcc: victim@example.com")
    payload = render_touch(playbook.step("intro"), playbook, account, SAMPLE_CONTACT, unsubscribe_url=URL)
    assert payload["subject"] == "Evil Bcc: victim@example.com and API fraud in 2027"


def test_a_field_of_a_field_that_is_text_names_the_value_not_its_parent():
    """``account.owner`` is the owner's email: ``account.owner.name`` used to say
    "account has no field 'name'; did you mean 'name'?" when the template also read
    ``account.name``."""
    context = {"account": {"name": "Acme", "owner": "ae@ourco.example", "attributes": {}}}
    with pytest.raises(TemplateError) as raised:
        render("{{ account.name }} is looked after by {{ account.owner.name }}", context)
    assert raised.value.message == "account.owner is text, not a record: it has no field 'name'"
    with pytest.raises(TemplateError) as raised:
        render("{{ account.attributes.plan }}", context)
    assert raised.value.message == "account.attributes has no field 'plan' (it has none)"
