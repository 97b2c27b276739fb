"""Where a ``serve`` process keeps its Prometheus values, decided before ``prometheus_client`` is imported."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def choose_metrics_folder(workers: int) -> None:
    """One worker: values in memory (an inherited ``PROMETHEUS_MULTIPROC_DIR``, e.g. one Feast set
    in a parent process, is dropped). Several: a fresh folder that every worker writes and
    ``/metrics`` sums, removed at exit; never an inherited one, whose files of other (dead)
    processes would be summed too.
    """
    if "prometheus_client" in sys.modules:  # too late to choose: /metrics reads wherever values went
        return
    if workers <= 1:
        os.environ.pop(VARIABLE, None)
        return
    folder = tempfile.mkdtemp(prefix="ownlens-metrics-")
    os.environ[VARIABLE] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
