"""Which column holds which field: the aliases CRMs export and the matching of a header row."""

from __future__ import annotations

from dataclasses import dataclass

from abm.services.imports.cells import attribute_key, header_key
from abm.services.imports.report import ImportFileError, ImportReport

# Aliases per field, most specific first: when several columns map to one field, the
# first non-empty cell in this order is used (HubSpot exports carry both "Company
# Domain Name" and "Website URL").
_COUNTRY = ["country", "country/region", "billing country", "hq country", "mailing country",
            "shipping country", "country name"]
ACCOUNT_ALIASES: dict[str, list[str]] = {
    "domain": ["domain", "company domain name", "company domain", "account domain", "domain name",
               "website", "website url", "company website", "web site", "url", "account website"],
    "name": ["name", "company name", "account name", "company", "account", "organization",
             "organisation", "organization name", "organisation name"],
    "industry": ["industry", "industry type", "sector", "vertical"],
    "employees": ["employees", "number of employees", "no of employees", "no. of employees",
                  "employee count", "num employees", "numberofemployees", "headcount", "company size"],
    "annual_revenue": ["annual revenue", "annualrevenue", "revenue", "total revenue"],
    "country": _COUNTRY,
    "tier": ["tier", "account tier", "abm tier", "target tier", "ideal customer profile tier", "icp tier"],
    "owner": ["owner", "owner email", "account owner", "account owner email", "company owner",
              "company owner email", "hubspot owner", "sales owner"],
    "stage": ["stage", "abm stage", "account stage", "lifecycle stage"],
    "timezone": ["time zone", "timezone", "tz"],
    "tags": ["tags", "labels"],
    "notes": ["notes", "description", "company description", "account description"],
    "crm_hubspot": ["record id", "hubspot id", "hubspot company id", "company id"],
    "crm_salesforce": ["account id", "salesforce id", "salesforce account id", "sfdc id"],
    # when the CRM last changed the record: a stage from an older export does not undo a later change
    "modified_at": ["last modified date", "last modified", "last modified date/time", "lastmodifieddate",
                    "modified date", "date modified", "last modified at", "hs_lastmodifieddate"],
}
CONTACT_ALIASES: dict[str, list[str]] = {
    "email": ["email", "email address", "e-mail", "work email", "business email", "primary email"],
    "first_name": ["first name", "firstname", "given name"],
    "last_name": ["last name", "lastname", "surname", "family name"],
    "full_name": ["name", "full name", "contact name"],
    "title": ["title", "job title", "jobtitle", "position"],
    "buying_role": ["buying role", "buying roles", "role", "buying committee role"],
    "country": _COUNTRY,
    "phone": ["phone", "phone number", "work phone", "business phone"],
    "account_domain": ["account domain", "company domain", "company domain name", "company website",
                       "account website", "website", "website url", "domain"],
    "crm_hubspot": ["record id", "hubspot id", "hubspot contact id"],
    "crm_salesforce": ["contact id", "salesforce id", "salesforce contact id", "sfdc id"],
    # the contact's account by its id in the CRM (linked before any domain)
    "account_salesforce": ["account id", "salesforce account id", "accountid", "sfdc account id"],
    "account_hubspot": ["associated company id", "associated company ids", "associated company id (primary)",
                        "primary associated company id", "hubspot company id"],
}
#: Column widths of the models: a longer cell is an error on that column, not a failed batch.
#: (HubSpot lifecycle stages, internal values and labels; Salesforce closed deals).
CRM_STAGES = {"subscriber": "target", "lead": "aware", "marketingqualifiedlead": "mqa", "mql": "mqa",
              "salesqualifiedlead": "mqa", "sql": "mqa", "evangelist": "customer", "closedwon": "customer",
              "closedlost": "lost"}
#: Buying-role names CRMs use, to the workspace's roles (HubSpot's hs_buying_role values).
ROLE_SYNONYMS = {"decisionmaker": "decision_maker", "budgetholder": "decision_maker",
                 "economicbuyer": "decision_maker", "executivesponsor": "decision_maker",
                 "enduser": "user", "legalandcompliance": "other", "blocker": "blocker"}



@dataclass
class Header:
    fields: dict[str, list[int]]  # field -> column indexes, preferred first
    attributes: list[tuple[int, str]]  # (column index, attribute key)
    width: int


def match_header(cells: list[str], aliases: dict[str, list[str]], report: ImportReport) -> Header:
    lookup: dict[str, tuple[str, int]] = {}
    for name, names in aliases.items():
        for rank, alias in enumerate(names):
            lookup.setdefault(header_key(alias), (name, rank))
    found: dict[str, list[tuple[int, int]]] = {}
    attributes: list[tuple[int, str]] = []
    for index, cell in enumerate(cells):
        key = header_key(cell)
        if key in lookup:
            name, rank = lookup[key]
            found.setdefault(name, []).append((rank, index))
            report.columns[cell.strip()] = name
        elif cell.strip():
            attr = attribute_key(cell) or f"column_{index + 1}"
            attributes.append((index, attr))
            report.attribute_columns[cell.strip()] = attr
        else:
            attributes.append((index, f"column_{index + 1}"))
            report.attribute_columns[f"(column {index + 1}, no header)"] = f"column_{index + 1}"
    fields = {name: [i for _, i in sorted(cols)] for name, cols in found.items()}
    return Header(fields, attributes, len(cells))


def no_header(kind: str, key: str, aliases: dict[str, list[str]], cells: list[str] | None) -> ImportFileError:
    names = ", ".join(repr(a.title()) for a in aliases[key][:6])
    seen = ", ".join(repr(c.strip()) for c in (cells or []) if c.strip())[:300] or "nothing"
    return ImportFileError(
        f"no usable header: the first row of a {kind} file must name its columns and include "
        f"a {key} column ({names}, ...); found {seen}")

