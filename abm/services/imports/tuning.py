"""The interpreter tuned for an import, in a process that does nothing else meanwhile.

Pausing the cyclic garbage collector and shortening the thread switch interval act on the
whole process: every other thread runs under them too. So an import tunes the
interpreter only when its thread is the only one of its process (:func:`alone_in_process`):
the ``abm import`` command, or an import job in a worker that runs nothing beside it (a
forked work horse, or ``abm worker`` without ``--with-scheduler``). A web server never
runs an import: its pages and API enqueue one.
"""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager, nullcontext

#: The interpreter's thread switch interval while an import runs (Python's default: 5 ms).
IMPORT_SWITCH_INTERVAL = 0.0005
_tuning = threading.Lock()
_imports_running = 0
_untuned: tuple[bool, float] = (True, 0.005)  # the collector's state and the interval before the first import


@contextmanager
def interpreter_tuned():
    """The interpreter set for an import while it runs, as it was once no import runs.

    - Python's cyclic garbage collector is off. The batches held make no reference
      cycles (reference counting frees them), yet the thousands of objects they add each
      batch trigger collections that walk every object of the process: about 15% of the
      CPU time of reading a contacts file.
    - Threads switch every 0.5 ms instead of 5. The reading thread computes without a
      pause; the threads that wait on the database (the writer, the look-ups, the COPYs)
      would otherwise wait up to 5 ms for the interpreter's lock after each answer, and the
      database with them: about 15% of a contacts import's time.

    Imports running at once in a process share the setting: the last to finish puts back
    what was there before the first.
    """
    global _imports_running, _untuned
    with _tuning:
        if not _imports_running:
            _untuned = (gc.isenabled(), sys.getswitchinterval())
            gc.disable()
            sys.setswitchinterval(IMPORT_SWITCH_INTERVAL)
        _imports_running += 1
    try:
        yield
    finally:
        with _tuning:
            _imports_running -= 1
            if not _imports_running:
                if _untuned[0]:
                    gc.enable()
                sys.setswitchinterval(_untuned[1])



def alone_in_process() -> bool:
    """Whether the calling thread is the only thread of its process (nothing else would run tuned)."""
    return threading.active_count() == 1


def tuned_if_alone(wanted: bool):
    """:func:`interpreter_tuned` when ``wanted`` (by the command line or the import job) and the caller is
    alone in its process; else the interpreter is left as it is."""
    return interpreter_tuned() if wanted and alone_in_process() else nullcontext()
