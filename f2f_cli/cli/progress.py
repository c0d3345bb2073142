"""Progress for long steps: a rich bar with rate and ETA on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from f2f_cli.cli.common import stderr


class CliProgress:
    """Implements ``f2f_cli.migration.progress.Progress`` for people."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True, log_every: float = 5.0) -> None:
        self.console = console or stderr()
        self.enabled = enabled
        self.interactive = self.console.is_terminal and sys.stderr.isatty()
        self.log_every = log_every
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._plain: dict[str, tuple[int | None, int, float, float]] = {}

    def __enter__(self) -> CliProgress:
        if self.enabled and self.interactive:
            self._bar = Progress(
                TextColumn("{task.description}", style="bold", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}", style="cyan", markup=False),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def start(self, task: str, total: int | None) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._tasks[task] = self._bar.add_task(task, total=total, rate="")
        else:
            # Quiet until there is progress to tell: a failing command prints only its error.
            now = time.monotonic()
            self._plain[task] = (total, 0, now, now)

    def advance(self, task: str, amount: int) -> None:
        if not self.enabled:
            return
        if self._bar is not None and task in self._tasks:
            tid = self._tasks[task]
            self._bar.advance(tid, amount)
            t = self._bar.tasks[self._bar.task_ids.index(tid)]
            if t.elapsed:
                self._bar.update(tid, rate=f"{t.completed / t.elapsed:,.0f}/s")
            return
        total, done, started, last = self._plain.get(task, (None, 0, time.monotonic(), time.monotonic()))
        done += amount
        now = time.monotonic()
        if now - last >= self.log_every:
            rate = done / (now - started) if now > started else 0.0
            of = f"/{total}" if total is not None else ""
            self.console.print(f"{task}: {done}{of} ({rate:,.0f}/s)")
            last = now
        self._plain[task] = (total, done, started, last)

    def set_total(self, task: str, total: int | None) -> None:
        if not self.enabled:
            return
        if self._bar is not None and task in self._tasks:
            self._bar.update(self._tasks[task], total=total)
        elif task in self._plain:
            _old, done, started, last = self._plain[task]
            self._plain[task] = (total, done, started, last)

    def finish(self, task: str) -> None:
        if not self.enabled:
            return
        if self._bar is None and task in self._plain:
            total, done, started, _ = self._plain.pop(task)
            if total is None and done == 0:
                return  # nothing happened (e.g. refused before any work): say nothing
            elapsed = time.monotonic() - started
            of = f"/{total}" if total is not None else " done"
            self.console.print(f"{task}: {done}{of} ({elapsed:.1f}s)")

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)


Report = Callable[[int, int], None]


@contextmanager
def progress(label: str, *, enabled: bool = True) -> Iterator[Report]:
    """A ``report(done, total)`` callback over ``CliProgress``, for cores that count rather than step."""
    with CliProgress(enabled=enabled) as bar:
        bar.start(label, None)
        reported = [0]

        def report(done: int, total: int) -> None:
            bar.set_total(label, total or None)
            bar.advance(label, done - reported[0])
            reported[0] = done

        yield report
        bar.finish(label)
