import pytest

from abm.normalize import NormalizeError, company_domain_of, normalize_domain, normalize_email


@pytest.mark.parametrize("raw,expected", [
    ("Example.com", "example.com"),
    ("https://www.Example.COM:443/pricing?x=1", "example.com"),
    ("http://shop.example.co.uk/", "shop.example.co.uk"),
    ("www.münchen.de", "xn--mnchen-3ya.de"),
    ("  acme.io. ", "acme.io"),
])
def test_domains_are_normalised(raw, expected):
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize("raw", ["", "localhost", "http://", "exa mple.com", "-bad.com", "1.2.3.4"])
def test_bad_domains_are_refused_with_a_reason(raw):
    with pytest.raises(NormalizeError):
        normalize_domain(raw)


def test_emails_are_normalised_and_free_mail_says_nothing_of_the_company():
    assert normalize_email(" Jane.Doe@WWW.Acme.com ") == "jane.doe@acme.com"
    assert company_domain_of("jane@acme.com") == "acme.com"
    assert company_domain_of("jane@gmail.com") is None
    with pytest.raises(NormalizeError, match="not an email"):
        normalize_email("jane at acme")
