"""What a playbook is validated against: the workspace's settings, as plain data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playbooks.model import CHANNEL_OF_KIND

DEFAULT_STAGES = ["target", "aware", "engaged", "mqa", "opportunity", "customer", "lost"]
DEFAULT_ROLES = ["decision_maker", "champion", "influencer", "user", "blocker", "other"]
ALL_CHANNELS = ("email", "ads", "alert", "task", "webhook", "crm")

#: The templates/email folder of this repository (for ``directory_loader``'s default).
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "email"

SAMPLE_ACCOUNT = {
    "id": 1,
    "name": "Northwind Bank",
    "domain": "northwindbank.com",
    "tier": 1,
    "stage": "target",
    "industry": "banking",
    "country": "US",
    "employees": 4200,
    "annual_revenue": 1_250_000_000,
    "owner": "dana.reyes@example.com",
    "tags": ["priority", "q3-push"],
    "score": 31.5,
    "engagement": "warm",
    "fit": 72.0,
    "attributes": {},
}

SAMPLE_CONTACT = {
    "id": 1,
    "first_name": "Priya",
    "last_name": "Shah",
    "name": "Priya Shah",
    "email": "priya.shah@northwindbank.com",
    "title": "VP Information Security",
    "role": "decision_maker",
    "country": "US",
    "phone": None,
    "department": "Security",
    "seniority": "vp",
    "attributes": {},
}


def directory_loader(directory: str | Path = TEMPLATES_DIR) -> Callable[[str], str | None]:
    """A template loader reading ``directory/NAME`` (None when it does not exist).

    Names that would leave the directory (``../x``, absolute paths) are never read.
    """
    root = Path(directory).resolve()

    def load(name: str) -> str | None:
        path = (root / name).resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path.read_text(encoding="utf-8")

    return load


@dataclass
class Workspace:
    """The settings a playbook is checked against.

    ``connectors``: configured connector name -> the channels it serves.
    ``default_connectors``: channel -> the connector name that serves steps which name
    none. ``template_loader``: email template file name -> its source, None if missing.
    ``sample_account`` / ``sample_contact``: what templates are rendered against in
    validation. ``default_timezone``: IANA name used by a ``send_window`` without one.
    ``segments``: saved segment name -> its condition (``audience: {segment: NAME}``).
    """

    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    roles: list[str] = field(default_factory=lambda: list(DEFAULT_ROLES))
    connectors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default_connectors: dict[str, str] = field(default_factory=dict)
    template_loader: Callable[[str], str | None] = field(default_factory=directory_loader)
    sample_account: dict = field(default_factory=lambda: dict(SAMPLE_ACCOUNT))
    sample_contact: dict = field(default_factory=lambda: dict(SAMPLE_CONTACT))
    default_timezone: str = "UTC"
    segments: dict = field(default_factory=dict)  # saved segment name -> its Condition

    @classmethod
    def default(cls, **overrides) -> Workspace:
        """The spec's default stages and roles; a ``log`` connector serving every channel
        and the default for each; an ``outbox`` connector for email; templates read
        from this repository's ``templates/email``. Handy for tests and the CLI."""
        values = dict(
            connectors={"log": ALL_CHANNELS, "outbox": ("email",)},
            default_connectors={channel: "log" for channel in set(CHANNEL_OF_KIND.values())},
        )
        values.update(overrides)
        return cls(**values)
