"""Progress for long commands: a rich bar on a terminal, plain lines in logs (CronJobs, CI)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from f2f_cli.cli.common import stderr

PLAIN_EVERY_SECONDS = 5.0

Report = Callable[[int, int], None]


@contextmanager
def progress(label: str, *, enabled: bool = True) -> Iterator[Report]:
    """Yield ``report(done, total)``; draws on stderr so stdout stays clean for data."""
    if not enabled:
        yield lambda _done, _total: None
        return
    if sys.stderr.isatty():
        bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr(),
            transient=True,
        )
        task = bar.add_task(label, total=None)
        with bar:
            yield lambda done, total: bar.update(task, completed=done, total=total or None)
        return
    last = [0.0]
    started = time.monotonic()

    def plain(done: int, total: int) -> None:
        now = time.monotonic()
        if done not in (0, total) and now - last[0] < PLAIN_EVERY_SECONDS:
            return
        last[0] = now
        of = f"/{total}" if total else ""
        print(f"{label}: {done}{of} ({now - started:.1f}s)", file=sys.stderr, flush=True)

    yield plain
