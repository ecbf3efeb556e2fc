"""What each KPI counts: one definition per figure and per attribution model.

The dashboard's labels, the glossary page (``/kpis/glossary``) and the glossary of
docs/kpis.md all come from here (a test holds the docs to :func:`markdown`; after a
change run ``python -m abm.services.kpi_glossary`` to rewrite that part of the docs).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Term:
    key: str  # the field of the API's answer
    label: str  # the name the pages show: it says what it counts
    definition: str


FIGURES = (
    Term("touches", "Marketing touches sent",
         "Touches sent in the period on a marketing channel (email, ads, webhook). Sales alerts and CRM "
         "tasks are the sales side's own work and are not counted."),
    Term("accounts_reached", "Accounts reached",
         "Accounts that got a marketing touch in the period."),
    Term("engaged_accounts", "Accounts engaged after a touch",
         "Reached accounts with an engagement event (anything but delivered, ad impressions, bounces, "
         "unsubscribes and spam reports) at or after the group's first touch there in the period."),
    Term("leads", "Leads credited",
         "Contacts whose first ever lead event (a form fill, reply or meeting, by default) fell in the period "
         "with a marketing touch at their account within the attribution window before it, credited to the "
         "groups of those touches by the attribution model. A contact is a lead once."),
    Term("cost", "Cost",
         "Spend entries prorated by day to the period, plus each connector's unit cost for each touch sent. "
         "Spend that names no field of the grouping shows as (unassigned)."),
    Term("cost_per_lead", "Cost per lead credited", "Cost divided by the leads credited."),
    Term("opportunities", "Opportunities credited",
         "Opportunities created in the period at accounts touched within the window before, credited by the "
         "attribution model."),
    Term("lead_to_opportunity_rate", "Leads that became opportunities",
         "The share of credited leads whose account had an opportunity created within the window after the lead."),
    Term("opportunity_to_won_rate", "Closed opportunities won",
         "Credited won opportunities divided by credited closed ones (open ones are not counted yet)."),
    Term("pipeline_influenced", "Pipeline influenced",
         "The amount of every opportunity created in the period at an account the group touched within the "
         "window before it, in full for every group that touched (influence does not add up across groups; the "
         "total counts each opportunity once)."),
    Term("revenue_influenced", "Revenue influenced", "Pipeline influenced by the opportunities that were won."),
    Term("median_days_first_touch_to_opportunity", "Median days from first touch to opportunity",
         "From a group's first touch at the account within the window to the opportunity's creation."),
)

FUNNEL = (
    Term("target", "Target accounts", "Accounts enrolled in a playbook and not held out."),
    Term("reached", "Target accounts reached", "Target accounts with a marketing touch in the period."),
    Term("engaged", "Reached accounts with any engagement in the period",
         "Reached target accounts with an engagement event in the period, before or after the touch (the "
         "table's \"Accounts engaged after a touch\" counts only events after the group's first touch)."),
    Term("lead", "Reached accounts with a lead event", "Reached target accounts with a lead event in the period."),
    Term("opportunity", "Target accounts with an opportunity",
         "Target accounts with an opportunity created in the period."),
    Term("won", "Target accounts with a won deal", "Target accounts with a won opportunity created in the period."),
)

OTHERS = (
    Term("velocity", "Median days in a stage",
         "For moves in the period, the median days an account spent in the stage it left, in the order the CRM "
         "recorded the changes. The row recording an account's creation is no move when older changes exist (a CRM "
         "backfill); when the first change is a move out of a stage, the time in that stage counts from the "
         "account's creation."),
    Term("coverage", "Coverage",
         "Target accounts reached and engaged in the period; per buying role, the share of target accounts with a "
         "contact of that role reached."),
    Term("lift", "Lift over the held-out control group",
         "Per playbook, enrolled against held-out accounts: the share that reached engaged (an engagement event "
         "after entry), an opportunity (created after entry) and won, with the difference and its 95% interval "
         "(Newcombe's hybrid score interval)."),
)

#: The lift card's rows: what each share counts (the table's and the funnel's "engaged" are other figures).
LIFT_METRICS = {"engaged": "Accounts engaged after entering", "opportunity": "Accounts with an opportunity after entering",
                "won": "Accounts with a won deal after entering"}

MODELS = (
    Term("first_touch", "First touch", "All of a conversion to the oldest touch within the window before it."),
    Term("last_touch", "Last touch", "All of it to the newest touch before it."),
    Term("linear", "Linear", "Split equally among the touches (a group with two of four touches gets half). "
                             "Called even in earlier versions; even is still accepted."),
    Term("u_shaped", "U-shaped", "40% to the first touch, 40% to the last, 20% split among the touches between; "
                                 "with one or two touches, split equally."),
    Term("w_shaped", "W-shaped",
         "30% to the first touch, 30% to the last touch at or before the account's first lead event, 30% to the "
         "last touch, and 10% split among the others; with three such touches, a third each. When the lead's "
         "touch is the first or the last (always so for a lead itself), U-shaped."),
    Term("time_decay", "Time decay",
         "Each touch weighs 2^(-age / half-life), its age in days at the conversion (setting "
         "attribution.half_life_days, 7 by default); the weights are scaled to add up to one."),
    Term("markov", "Data-driven (Markov removal effect)",
         "A first-order Markov chain of the period's journeys (Anderl, Becker, von Wangenheim and Schumann, "
         "\"Mapping the customer journey: lessons learned from graph-based online attribution modeling\", "
         "International Journal of Research in Marketing 33(3), 2016): each conversion's touches, ending in a "
         "conversion, and each reached account without a conversion, ending in none. A group's removal effect is "
         "the share of conversions lost when it is taken out of the chain; each conversion is split among the "
         "groups of its touches in proportion to their removal effects (among a group's touches equally)."),
)


#: How amounts are written, per ISO currency (others: the code, then the amount).
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "INR": "₹", "CNY": "CN¥"}


def money(value: float | None, currency: str = "USD") -> str:
    """``$1,234.50``; ``–`` for no value."""
    if value is None:
        return "–"
    sign, amount = ("-" if value < 0 else ""), f"{abs(value):,.2f}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{currency} {amount}"


def count(value: float | None) -> str:
    """``1,234`` or ``2.5``; ``–`` for no value."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")


def percent(value: float | None) -> str:
    """A rate (0 to 1) as ``42.5%``; ``–`` for no value."""
    return "–" if value is None else f"{value * 100:.1f}%".replace(".0%", "%")


def days(value: float | None) -> str:
    """``12.5 d``; ``–`` for no value."""
    return "–" if value is None else f"{count(value)} d"


def label(key: str) -> str:
    """The page's name of a figure (the key itself when none is defined)."""
    return next((t.label for t in FIGURES + FUNNEL + OTHERS if t.key == key), key)


SECTIONS = (("Figures", FIGURES), ("The funnel", FUNNEL), ("Other figures", OTHERS),
            ("Attribution models", MODELS))
START, END = "<!-- glossary: generated by abm/services/kpi_glossary.py -->", "<!-- glossary: end -->"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "kpis.md"


def markdown() -> str:
    lines = [START, ""]
    for title, terms in SECTIONS:
        lines += [f"### {title}", ""]
        lines += [f"- **{t.label}** (`{t.key}`): {t.definition}" for t in terms]
        lines.append("")
    return "\n".join([*lines, END])


def docs_with_glossary(text: str) -> str:
    """``text`` (docs/kpis.md) with its glossary part replaced by :func:`markdown`."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return head + markdown() + tail


if __name__ == "__main__":  # rewrite the glossary part of docs/kpis.md
    DOCS.write_text(docs_with_glossary(DOCS.read_text()))
    sys.exit(0)
