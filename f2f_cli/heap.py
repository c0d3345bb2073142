"""Short full garbage collections in the long-running processes (``f2f serve``, ``f2f worker``).

CPython's full collection walks every tracked object, and a started process holds over a hundred
thousand that never die (modules, functions, pools, the recipe index). Measured in the backup
worker: a full collection every few seconds, 40-65 ms of CPU and up to 165 ms of wall time each,
during which no batch commits, which was the tail of the backup lag (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect once, then move every object alive now out of the collector's reach (``gc.freeze``).

    Call it once a process has started (imports done, pools and caches built). Objects created later
    are collected as usual; the frozen ones are still freed by reference counting when they die."""
    gc.collect()
    gc.freeze()
