"""workers/enqueue.py names each job it enqueues once: every name must be a function a worker can run."""

from __future__ import annotations

import importlib

from workers import enqueue


def test_every_job_enqueue_names_is_a_function_of_workers():
    for what, path in enqueue.JOBS.items():
        module, _, name = path.rpartition(".")
        assert module.startswith("workers."), what
        assert callable(getattr(importlib.import_module(module), name)), f"{what}: {path} does not resolve"
