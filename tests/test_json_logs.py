"""`ABM_LOG_FORMAT=json`: a process's log lines are JSON objects (read back by json.loads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_json_log_lines(tmp_path):
    script = ("import logging; import config; from abm import create_app; create_app(config.TestingConfig()); "
              "logging.getLogger('abm.test').warning('a %s', 'warning')")
    env = dict(os.environ, ABM_LOG_FORMAT="json", ABM_INSTANCE_PATH=str(tmp_path),
               ABM_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert {"level": "warning", "logger": "abm.test", "message": "a warning"}.items() <= lines[-1].items(), out.stderr
