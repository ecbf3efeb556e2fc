#!/usr/bin/env python3
"""Set up and run the product, or its tests, with nothing installed but Python 3.11+.

    python3 run.py demo     # virtualenv, install, migrate, demo data, web UI, workers
    python3 run.py test     # virtualenv, install with test extras, the whole test suite
    python3 run.py check    # the checks a tool makes: ruff, import-linter's layers, radon's grades

Anything after the verb is passed on (``python3 run.py test -k imports``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


#: What each verb installs: the extras, and the lock file (requirements/NAME.txt) with their pinned versions.
LOCKS = {"demo": ("demo,pg", "demo"), "test": ("test,pg,demo", "test")}


def ensure_venv(verb: str) -> None:
    """The virtualenv with the versions of the lock file (the ones CI tested), then the project itself.

    The project is installed after the lock with its dependencies, so a dependency declared in
    pyproject.toml and not yet locked is still installed (with a warning: regenerate the lock,
    see docs/testing.md).
    """
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py may be started by an older Python
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    extras, lock_name = LOCKS[verb]
    lock = ROOT / "requirements" / f"{lock_name}.txt"
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{lock_name}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    warn_if_unlocked(lock)
    print(f"installing {lock.relative_to(ROOT)} and the project with [{extras}] into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(lock)], check=True, cwd=ROOT)
    subprocess.run([*pip, "-e", f".[{extras}]"], check=True, cwd=ROOT)
    stamp.write_text(digest)


def warn_if_unlocked(lock: Path) -> None:
    """Say so when pyproject.toml declares a package that the lock file does not pin."""
    import tomllib  # noqa: PLC0415 - Python 3.11+: run.py first says so to an older Python

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + [d for ds in project["optional-dependencies"].values() for d in ds]
    names = {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-") for d in declared}
    pinned = {line.split("==")[0].lower().replace("_", "-").replace(".", "-")
              for line in lock.read_text().splitlines() if "==" in line and not line.startswith("#")}
    missing = sorted(names - pinned - {"abm-orchestrator"})
    if missing and lock.name == "test.txt":
        print(f"warning: {', '.join(missing)} declared in pyproject.toml but not pinned in "
              f"{lock.relative_to(ROOT)}: regenerate the lock files (docs/testing.md)", flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "check"):
        print(__doc__)
        return 2
    verb, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if verb == "demo":
        ensure_venv("demo")
        return subprocess.call([str(BIN / "abm"), "demo", *rest])
    ensure_venv("test")
    if verb == "check":
        return check()
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest])


def check() -> int:
    """ruff on the whole tree, the import contracts of pyproject.toml, the complexity of the busiest modules."""
    failed = 0
    for name, command in (("ruff", [str(BIN / "ruff"), "check", "."]),
                          ("import-linter", [str(BIN / "lint-imports")]),
                          ("radon", [str(BIN / "python"), "tools/complexity.py"])):
        print(f"== {name}", flush=True)
        if subprocess.call(command) != 0:
            print(f"== {name}: FAILED", flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
