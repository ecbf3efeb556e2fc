"""Radon's grade of every function of the modules where people change things most: C or better.

    python tools/complexity.py        # run by `python3 run.py check` (and so by .ci/run)

Grade C is a cyclomatic complexity of 20 at most: a function a reader holds in their
head, made of named steps. A function listed in PENDING is reported but does not fail
the check; its owner removes the entry when the function is split.
"""

from __future__ import annotations

import sys
from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("abm/services/kpis.py", "playbooks/machine.py", "abm/services/playbooks.py",
           *(f"abm/services/events/{name}.py" for name in ("validation", "intake", "drainer", "resolve", "insert")),
           "abm/services/dry_run.py", "abm/services/simulation.py", "playbooks/diff.py",
           "workers/dispatcher.py", "workers/jobs.py")
WORST = "C"
#: (module, function) -> who is splitting it: reported, not failed, until then. None now.
PENDING: dict[tuple[str, str], str] = {}


def main() -> int:
    failed = 0
    for module in MODULES:
        for block in cc_visit((ROOT / module).read_text()):
            grade = cc_rank(block.complexity)
            if grade <= WORST:
                continue
            name = block.fullname
            owner = PENDING.get((module, name))
            where = f"{module}:{block.lineno} {name}: grade {grade} (complexity {block.complexity})"
            if owner:
                print(f"pending ({owner}): {where}")
            else:
                print(f"too complex: {where}; split it into named steps (grade {WORST} or better)")
                failed += 1
    print(f"complexity: {failed} function(s) worse than grade {WORST} in {', '.join(MODULES)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
