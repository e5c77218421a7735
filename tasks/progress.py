"""Progress of long stages, where people look: a rich bar in the terminal and a Prefect progress
artifact on the task run in the UI (updated at most every few seconds: each update is an API call).

    from tasks.progress import StageProgress
    with StageProgress("sample: problems", total=len(problems)) as progress:
        for chunk in chunks:
            ...
            progress.advance(len(chunk))

Outside a Prefect task or flow run (tests, scripts) there is no artifact; without a terminal the
bar is replaced by a log line every 10%.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class StageProgress:
    def __init__(self, description: str, total: int, *, every_s: float = 5.0, show_bar: bool = True):
        self.description, self.total, self.every_s = description, max(int(total), 1), every_s
        self.done, self._last_push, self._last_log_decile = 0, 0.0, 0
        self._artifact = _create_artifact(description)
        self._bar = self._task = None
        self._log = show_bar   # show_bar=False: the caller has its own terminal output
        if show_bar and sys.stderr.isatty():
            from rich.progress import Progress
            self._bar = Progress(transient=False)
            self._bar.start()
            self._task = self._bar.add_task(description, total=self.total)

    def __enter__(self) -> "StageProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        self.done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=min(done, self.total))
        decile = int(10 * self.fraction)
        if self._bar is None and decile > self._last_log_decile and self._log:
            self._last_log_decile = decile
            log.info("%s: %d/%d (%d%%)", self.description, done, self.total, 100 * self.fraction)
        if self._artifact is not None and (time.monotonic() - self._last_push >= self.every_s or done >= self.total):
            self._push()

    def close(self) -> None:
        if self._artifact is not None:
            self._push()
            self._artifact = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _push(self) -> None:
        from prefect.artifacts import update_progress_artifact
        self._last_push = time.monotonic()
        try:
            update_progress_artifact(self._artifact, progress=round(100 * self.fraction, 1),
                                     description=f"{self.description}: {self.done}/{self.total}")
        except Exception as e:  # the UI is a view: losing an update never fails a stage
            log.debug("progress artifact update failed: %s", e)


def _create_artifact(description: str):
    """A progress artifact on the current task run (None outside a Prefect run)."""
    try:
        from prefect.context import TaskRunContext
        if TaskRunContext.get() is None:
            return None
        from prefect.artifacts import create_progress_artifact
        return create_progress_artifact(progress=0.0, description=description)
    except Exception as e:
        log.debug("no progress artifact: %s", e)
        return None


def chunks(n_items: int, min_size: int, parts: int = 10) -> list[range]:
    """Index ranges splitting n_items into about `parts` chunks of at least min_size items."""
    size = max(min_size, -(-n_items // parts))
    return [range(i, min(i + size, n_items)) for i in range(0, n_items, size)]
