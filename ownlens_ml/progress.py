"""Named steps of long work: a spinner per step when shown, and each step's wall time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Steps:
    """``with steps("fit", "churn: fit 1,234 rows"): ...`` shows the step and times it."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, key: str, label: str) -> Iterator[None]:
        task = self.progress.add_task(label, total=1) if self.progress else None
        started = time.perf_counter()
        yield
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
        if task is not None:
            self.progress.update(task, completed=1)


@contextmanager
def steps(show: bool) -> Iterator[Steps]:
    """Steps with a live spinner column when ``show``, silent (timings only) otherwise."""
    if not show:
        yield Steps()
        return
    columns = (SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns) as progress:
        yield Steps(progress)
