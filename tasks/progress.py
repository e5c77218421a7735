"""Progress of long stages, where people look: a rich bar in the terminal, and whatever sink the
caller installs (flows/ wires Prefect's progress artifact; tasks/ itself never imports Prefect).

    from tasks.progress import StageProgress
    with StageProgress("sample: problems", total=len(problems)) as progress:
        for chunk in chunks:
            ...
            progress.advance(len(chunk))

    with reporting(sink_factory):      # flows/stages.py: sink_factory(description) -> sink(done, total)
        run_the_stage()

Without a sink (tests, scripts, launched jobs) nothing is reported beyond the terminal; without a
terminal the bar is replaced by a log line every 10%.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)

Sink = Callable[[int, int], None]                      # (done, total)
_sink_factory: contextvars.ContextVar[Callable[[str], Sink] | None] = contextvars.ContextVar(
    "progress_sink_factory", default=None)


@contextlib.contextmanager
def reporting(sink_factory: Callable[[str], Sink] | None) -> Iterator[None]:
    """Every StageProgress opened inside this block reports through `sink_factory(description)`."""
    token = _sink_factory.set(sink_factory)
    try:
        yield
    finally:
        _sink_factory.reset(token)


class StageProgress:
    def __init__(self, description: str, total: int, *, every_s: float = 5.0, show_bar: bool = True):
        self.description, self.total, self.every_s = description, max(int(total), 1), every_s
        self.done, self._last_push, self._last_log_decile = 0, 0.0, 0
        self._sink = _open_sink(description)
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
        if self._sink is not None and (time.monotonic() - self._last_push >= self.every_s or done >= self.total):
            self._push()

    def close(self) -> None:
        if self._sink is not None:
            self._push()
            self._sink = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _push(self) -> None:
        self._last_push = time.monotonic()
        try:
            self._sink(min(self.done, self.total), self.total)
        except Exception as e:  # the UI is a view: losing an update never fails a stage
            log.debug("progress update failed: %s", e)


def _open_sink(description: str) -> Sink | None:
    factory = _sink_factory.get()
    if factory is None:
        return None
    try:
        return factory(description)
    except Exception as e:
        log.debug("no progress sink: %s", e)
        return None


def chunks(n_items: int, min_size: int, parts: int = 10) -> list[range]:
    """Index ranges splitting n_items into about `parts` chunks of at least min_size items."""
    size = max(min_size, -(-n_items // parts))
    return [range(i, min(i + size, n_items)) for i in range(0, n_items, size)]
