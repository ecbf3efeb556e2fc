"""The one plain-text converter and the one List-Unsubscribe builder (connectors/email_text.py),
used alike by the playbook renderer and the email connectors."""

from __future__ import annotations

import pytest

from connectors import email_message, sendgrid
from connectors.email_text import html_to_text, list_unsubscribe_headers
from playbooks import templates

CASES = [
    ("<p>Hi Pat, a short note for Acme &amp; Co.</p>", "Hi Pat, a short note for Acme & Co.\n"),
    ('<!DOCTYPE html>\n<html><body><h1>News</h1><p>First  line<br/>second\tline</p>'
     '<ul><li>one</li><li>two</li></ul><a HREF="https://v.example/?a=1&amp;b=2">View</a></body></html>',
     "News\n\nFirst line\nsecond line\n\n- one\n- two\nView (https://v.example/?a=1&b=2)\n"),
    ("<html><head><title>T</title><style>p {color: red}</style></head><body><p>x</p></body></html>", "x\n"),
    ("<p>a < b and c > d</p><!-- a comment --><p>after</p>", "a < b and c > d\n\nafter\n"),
    ('<p>a <a href="https://a.example">one</a> and <a>no link</a> and <a href="/rel">relative</a></p>',
     "a one (https://a.example) and no link and relative\n"),
    ('<p><a href="https://same.example">https://same.example</a> <a href="mailto:x@y.example">write</a></p>',
     "https://same.example write (mailto:x@y.example)\n"),
    ("<p>unquoted <a href=https://u.example>link</a></p><script>var x = '<p>';</script>",
     "unquoted link (https://u.example)\n"),
    ("", "\n"),
]


@pytest.mark.parametrize(("html", "text"), CASES)
def test_html_becomes_readable_text(html, text):
    assert html_to_text(html) == text


def test_the_renderer_and_the_email_connectors_write_the_same_text_part():
    """One converter: the text a playbook step renders is the text SMTP and SendGrid derive."""
    assert templates.html_to_text is email_message.html_to_text is sendgrid.html_to_text is html_to_text
    html = '<p>Hi Pat,</p><ul><li>one</li></ul><p><a href="https://v.example/r">Read</a> &amp; reply</p>'
    assert html_to_text(html) == "Hi Pat,\n\n- one\n\nRead (https://v.example/r) & reply\n"


def test_one_click_only_with_an_https_uri():
    """RFC 8058 section 3.1: the List-Unsubscribe-Post header needs an https URI beside it."""
    assert list_unsubscribe_headers("https://abm.example/u/t", "unsub@vendor.example") == {
        "List-Unsubscribe": "<https://abm.example/u/t>, <mailto:unsub@vendor.example?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert list_unsubscribe_headers("http://abm.example/u/t") == {"List-Unsubscribe": "<http://abm.example/u/t>"}
    assert list_unsubscribe_headers(None, "unsub@vendor.example") == {
        "List-Unsubscribe": "<mailto:unsub@vendor.example?subject=unsubscribe>"}
