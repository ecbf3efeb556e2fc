"""The import job: read a queued file into the database (see ``abm.services.imports.runs``)."""

from __future__ import annotations

from abm.services.imports import runs


def run_import(run_id: int) -> dict:
    """Run the import ``run_id``: its progress and report are written on its row as it goes.

    The interpreter is tuned for the import only when nothing else runs in this process
    (a forked work horse, or a worker without the scheduler thread).
    """
    return runs.execute(run_id, tune_interpreter=True)
