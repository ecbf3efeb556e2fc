"""Every broken playbook in broken/ is rejected with exactly the errors in its
.errors file (one `FILE:LINE:COL PATH: MESSAGE` a line, in order)."""

from __future__ import annotations

import pytest

from playbooks import load
from tests.playbooks.conftest import BROKEN_DIR, corpus_workspace

CASES = sorted(BROKEN_DIR.glob("*.yaml"))


def test_corpus_is_not_empty():
    assert len(CASES) >= 25
    for case in CASES:
        assert case.with_suffix(".errors").exists(), f"{case.name} has no .errors file"


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_broken_playbook_reports_exact_errors(case):
    expected = case.with_suffix(".errors").read_text(encoding="utf-8").splitlines()
    result = load(case.read_text(encoding="utf-8"), case.name, corpus_workspace())
    assert result.playbook is None
    assert not result.ok
    assert [str(error) for error in result.errors] == expected
    assert expected, "a broken playbook must have at least one expected error"
