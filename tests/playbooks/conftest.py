"""Shared fixtures: a workspace like a real one, with a few connectors configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.workspace import ALL_CHANNELS, TEMPLATES_DIR, Workspace, directory_loader

BROKEN_DIR = Path(__file__).parent / "broken"


def corpus_workspace() -> Workspace:
    """``log`` serves every channel and is the default for all but webhook (so a
    webhook step that names no connector has none); ``outbox`` serves email;
    ``linkedin-ads`` ads; ``slack`` alerts. Templates come from templates/email and,
    for the broken corpus, tests/playbooks/broken/templates."""
    repo_templates = directory_loader(TEMPLATES_DIR)
    corpus_templates = directory_loader(BROKEN_DIR / "templates")

    def loader(name: str) -> str | None:
        return corpus_templates(name) or repo_templates(name)

    return Workspace(
        connectors={"log": ALL_CHANNELS, "outbox": ("email",), "linkedin-ads": ("ads",), "slack": ("alert",)},
        default_connectors={"email": "outbox", "ads": "linkedin-ads", "alert": "slack", "task": "log"},
        template_loader=loader,
        default_timezone="Europe/Paris",
    )


@pytest.fixture
def workspace() -> Workspace:
    return corpus_workspace()
