"""The docs stand alone and what they promise a newcomer holds on a fresh install."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click

from abm.cli import all_commands
from abm.paths import ROOT

EXAMPLES = sorted((ROOT / "playbooks" / "examples").glob("*.yaml"))
#: The design notes beside a checkout, which a clone does not have (spelt in two parts so
#: that this file does not name the path it looks for).
OUTSIDE = "/".join(("shared", "spec"))


def test_nothing_points_outside_the_repository_to_the_design_notes():
    files = [p for pattern in ("**/*.md", "**/*.py") for p in ROOT.glob(pattern)
             if not {".venv", "node_modules", ".git"} & set(p.parts)]
    pointing = [str(p.relative_to(ROOT)) for p in files if OUTSIDE in p.read_text(errors="replace")]
    assert pointing == []


def _abm(tmp_path, *args):
    env = {"PATH": str(Path(sys.executable).parent), "ABM_INSTANCE_PATH": str(tmp_path),
           "ABM_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "HOME": str(tmp_path)}
    return subprocess.run([str(Path(sys.executable).parent / "abm"), *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def test_on_a_fresh_install_the_examples_validate_and_a_missing_migration_is_named(tmp_path):
    before = _abm(tmp_path, "playbook", "validate", *map(str, EXAMPLES))
    assert before.returncode == 1 and "Traceback" not in before.stderr
    assert "run `abm db upgrade` first" in before.stderr
    assert _abm(tmp_path, "db", "upgrade").returncode == 0
    after = _abm(tmp_path, "playbook", "validate", *map(str, EXAMPLES))
    assert after.returncode == 0, after.stderr
    assert "stand-ins" in after.stderr and after.stderr.count(": ok (") == len(EXAMPLES) == 5


def test_every_relative_link_of_the_docs_leads_to_a_file_of_the_repository():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_readme_command_table_names_every_command_and_subcommand_of_abm_help():
    """Every command ``abm --help`` lists, and every subcommand of a group, is in the
    README's command table (``abm NAME``, subcommands as ``a\\|b`` or ``abm NAME SUB``)."""
    section = (ROOT / "README.md").read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] if line.count("`") >= 2 else line
            for line in section.replace("\\|", "/").splitlines() if line.startswith("| `abm")]
    missing = []
    for command in all_commands():
        named = [row for row in rows if f"`abm {command.name}" in row or f", `abm {command.name}" in row]
        if not named:
            missing.append(command.name)
            continue
        if isinstance(command, click.Group):
            words = {w for row in named for w in row.replace("`", " ").replace("/", " ").replace(",", " ").split()}
            missing += [f"{command.name} {sub}" for sub in command.commands if sub not in words]
    assert missing == []
