"""Latency samples turned into the figures every bench reports."""

from __future__ import annotations

import msgspec
import numpy as np


class LatencyStats(msgspec.Struct):
    """Throughput and latency percentiles of one operation on one target."""

    ops: int
    errors: int
    seconds: float  # wall time the timed operations ran (summed over rounds)
    ops_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float


def summarize(samples_ns: list[int], seconds: float, errors: int = 0) -> LatencyStats:
    """``samples_ns``: one latency per successful operation, in nanoseconds."""
    if not samples_ns:
        return LatencyStats(0, errors, seconds, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p95, p99 = (float(v) for v in np.percentile(ms, [50, 95, 99]))
    return LatencyStats(
        ops=len(samples_ns),
        errors=errors,
        seconds=seconds,
        ops_per_second=len(samples_ns) / seconds if seconds > 0 else 0.0,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=float(ms.mean()),
        max_ms=float(np.max(ms)),
    )


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is zero (nothing measured)."""
    return numerator / denominator if denominator > 0 else None
