"""The plain-text part: the fast reader of plain HTML gives exactly what html.parser gives."""

from __future__ import annotations

import random

import pytest

from playbooks import templates
from playbooks.templates import html_to_text


def _standard(html: str) -> str:
    """html_to_text as read by the standard parser only."""
    parser = templates._TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return templates.re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


CASES = [
    "<p>Hi Pat, a short note for Acme &amp; Co.</p>",
    '<!DOCTYPE html>\n<html><body><h1>News</h1><p>First  line<br/>second\tline</p>'
    '<ul><li>one</li><li>two</li></ul><a HREF="https://v.example/?a=1&amp;b=2">View</a></body></html>',
    "<div><p class='x' data-id=\"7\">Tom &lt;3 &eacute;t&eacute; &#39;quoted&#39;</p>\n\n\n\n<table><tr>"
    "<td>cell</td></tr></table></div>trailing &amp text",
    '<p>a <a href="https://a.example">one</a> and <a>no link</a> and <a href="">empty</a></p>',
    '<P Style="color:red">upper <B>case</B></P><br /><br>',
    '<p title="a>b">quoted angle</p><img src="x.png" alt="a"/>after',
    # Not plain: the standard parser reads these.
    "<html><head><title>T</title><style>p {color: red}</style></head><body><p>x</p></body></html>",
    "<p>a < b and c > d</p><!-- a comment --><p>after</p>",
    "<p>unquoted <a href=https://u.example>link</a></p><script>var x = '<p>';</script>",
    "<p>broken <a href='x'",
    "",
    "just text, no tags &amp; an entity",
]


@pytest.mark.parametrize("html", CASES)
def test_same_text_as_the_standard_parser(html):
    assert html_to_text(html) == _standard(html)


def test_same_text_on_random_plain_documents():
    rng = random.Random(7)
    pieces = ["<p>", "</p>", "<br>", "<br/>", "<div>", "</div>", "<li>", "</li>", "<b>", "</b>", " ", "\n", "\t",
              "text", "Ünïcode", "&amp;", "&lt;", "&#38;", "&copy;", "&", '<a href="https://x.example/?q=1&amp;r=2">',
              "<a href='https://y.example'>", "<a>", "</a>", '<span class="c" id=\'i\'>', "</span>", "<h2>", "</h2>",
              "<table>", "<tr>", "</tr>", "</table>", "<hr/>", "<!doctype html>", "<A HREF=\"HTTPS://Z\">", "</A>"]
    for _ in range(500):
        html = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert html_to_text(html) == _standard(html), html


def test_plain_documents_take_the_fast_reader():
    parser = templates._TextExtractor()
    assert templates._extract_plain(CASES[1], parser)
    assert not templates._extract_plain(CASES[7], templates._TextExtractor())
