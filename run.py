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
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py may be started by an older Python
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing the project{f' with [{extras}]' if extras else ''} into .venv ...", flush=True)
    target = f".[{extras}]" if extras else "."
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "-e", target], check=True, cwd=ROOT)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "check"):
        print(__doc__)
        return 2
    verb, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if verb == "demo":
        ensure_venv("")
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
