"""Latency charts (PNG or SVG) for any bench; matplotlib is the optional extra ``f2f[plot]``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from f2f_cli.bench.stats import LatencyStats
from f2f_cli.errors import ConfigError, NotAvailable

FORMATS = (".png", ".svg")


def check_plot_path(path: Path) -> None:
    """Fail before a long run, not after it."""
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--plot {path}: the file name must end in .png or .svg")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"--plot {path}: the folder {folder} does not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NotAvailable("--plot needs matplotlib: pip install 'f2f[plot]'") from None


def plot_latencies(
    path: Path, title: str, series: Mapping[str, Mapping[str, LatencyStats]], subtitle: str = ""
) -> None:
    """Grouped bars per operation (x) and target (colour): bar = p50, whisker up to p99, dot = p95."""
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(op for ops in series.values() for op in ops))
    targets = list(series)
    width = 0.8 / max(1, len(targets))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) * max(1, len(targets)) / 2), 4.5))
    for j, target in enumerate(targets):
        xs, p50, p95, up = [], [], [], []
        for i, op in enumerate(groups):
            stats = series[target].get(op)
            if stats is None or stats.ops == 0:
                continue
            xs.append(i + (j - (len(targets) - 1) / 2) * width)
            p50.append(stats.p50_ms)
            p95.append(stats.p95_ms)
            up.append(max(0.0, stats.p99_ms - stats.p50_ms))
        if not xs:
            continue
        ax.bar(xs, p50, width, label=target, yerr=[[0.0] * len(up), up], capsize=3)
        ax.scatter(xs, p95, marker="o", s=10, color="black", zorder=3)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms (bar p50, dot p95, whisker p99)")
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
