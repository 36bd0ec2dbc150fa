"""A test hook for crash tests: named pause points where a test can kill the process (kill -9).

``CURATION_TEST_PAUSE_AT=<name>`` makes the process stop at the pause point of that name: it says so on stderr,
creates the file named by ``CURATION_TEST_PAUSE_MARKER`` (when set) and sleeps ``CURATION_TEST_PAUSE_SECONDS``
(default 600) before going on. Unset (always, outside tests), a pause point is one dictionary lookup.

Pause points: ``model:after-checkpoint-save`` (the model run's checkpoint is on disk, the run not yet recorded),
``loop:after-checkpoint-save`` (the same for a round's retrain), ``labels:before-bulk-write`` and
``labels:after-bulk-write`` (around the one bulk write of label changes, history and provenance),
``import:before-swap`` (the new dataset and its media complete under staging names, the old ones untouched) and
``import:mid-swap`` (the old dataset renamed aside, the new one not yet in place).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

PAUSE_VARIABLE = "CURATION_TEST_PAUSE_AT"
MARKER_VARIABLE = "CURATION_TEST_PAUSE_MARKER"
SECONDS_VARIABLE = "CURATION_TEST_PAUSE_SECONDS"


def pause_point(name: str) -> None:
    """Pause here when ``CURATION_TEST_PAUSE_AT`` is ``name`` (announced on stderr and in the marker file)."""
    if os.environ.get(PAUSE_VARIABLE) != name:
        return
    print(f"curation: paused at {name} (pid {os.getpid()})", file=sys.stderr, flush=True)
    marker = os.environ.get(MARKER_VARIABLE)
    if marker:
        Path(marker).write_text(f"{name} {os.getpid()}\n")
    time.sleep(float(os.environ.get(SECONDS_VARIABLE, "600")))
