"""Progress bars for long work (backfills, rebuilds, the demo, benchmarks).

Shown on stderr only when it is a terminal, so piped or logged output stays clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class _Bar:
    """What a caller advances; a no-op when the bar is hidden."""

    def __init__(self, progress: Progress | None, task_id: int | None) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task_id is not None:
            self._progress.advance(self._task_id, n)

    def __call__(self, step: int | str = 1) -> None:
        """Lets a bar be passed as a `progress` callback: a count advances the bar, a
        message (a build naming the model it works on) becomes its description."""
        if isinstance(step, str):
            if self._progress is not None and self._task_id is not None:
                self._progress.update(self._task_id, description=step.strip()[:60])
            return
        self.advance(step)


def is_interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_bar(total: int | None, description: str) -> Iterator[_Bar]:
    """A bar on stderr while the block runs; silent when stderr is not a TTY."""
    if not is_interactive():
        yield _Bar(None, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
