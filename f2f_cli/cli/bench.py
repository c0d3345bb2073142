"""``f2f bench``: measurements an operator or CI can rerun and compare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from f2f_cli.bench.recommend import RecommendBenchResult, run_recommend_bench
from f2f_cli.cli.common import JSON_HELP, cli_errors, load_settings, print_json, stderr, stdout
from f2f_cli.errors import StoreUnavailable

app = typer.Typer(
    help="Measure the stores, the recommender and the HTTP path.\n\nExample:\n\n  f2f bench recommend --recipes 100000",
    no_args_is_help=True,
    add_completion=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _redis_snapshot_store(url: str, prefix: str) -> Callable[[bytes], Callable[[], bytes]]:
    """Write the snapshot to Redis once and read it back on demand (the key is removed afterwards)."""
    from redis import Redis
    from redis.exceptions import RedisError

    key = f"{prefix}:bench:recipes:index"

    def store(blob: bytes) -> Callable[[], bytes]:
        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        try:
            client.set(key, blob, ex=300)
        except RedisError as exc:
            client.close()
            raise StoreUnavailable(f"cannot write the snapshot to Redis: {exc}") from None

        def read() -> bytes:
            try:
                value = client.get(key)
                client.delete(key)
            except RedisError as exc:
                raise StoreUnavailable(f"cannot read the snapshot from Redis: {exc}") from None
            finally:
                client.close()
            assert isinstance(value, bytes)
            return value

        return read

    return store


def _mark(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[red]over target[/]"


@app.command("recommend")
@cli_errors
def recommend(
    recipes: Annotated[int, typer.Option(min=10, max=5_000_000, help="Synthetic catalog size.")] = 100_000,
    queries: Annotated[int, typer.Option(min=1, help="Timed queries.")] = 300,
    fridge_size: Annotated[int, typer.Option(min=1, max=100, help="Ingredients per fridge.")] = 15,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Recipes returned per query.")] = 20,
    reference_queries: Annotated[int, typer.Option(min=0, help="Full-scan reference queries (slow).")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed of the catalog and fridges.")] = 42,
    redis: Annotated[bool, typer.Option("--redis", help="Round-trip the snapshot through F2F_REDIS_URL.")] = False,
    json: JsonOpt = False,
) -> None:
    """Recommender latency on a Zipf-distributed synthetic catalog, against a full Python scan."""
    store = None
    if redis:
        settings = load_settings()
        if not settings.redis_url:
            raise StoreUnavailable("--redis needs F2F_REDIS_URL")
        store = _redis_snapshot_store(settings.redis_url, settings.redis_key_prefix)
    err = stderr()
    result = run_recommend_bench(
        recipes=recipes, queries=queries, fridge_size=fridge_size, limit=limit,
        reference_queries=reference_queries, seed=seed, snapshot_store=store,
        progress=None if json else lambda msg: err.print(f"[dim]{msg}…[/]"),
    )
    if json:
        print_json(result)
        return
    _render(result)


def _render(r: RecommendBenchResult) -> None:
    t = r.targets
    table = Table("measure", "value", "target", "", title=(
        f"recommender: {r.recipes:,} recipes, {r.ingredients:,} ingredients, {r.core_entries:,} core entries; "
        f"top {r.limit} for a {r.fridge_size}-ingredient fridge, {r.queries} queries"))
    table.add_row("query p50", f"{r.p50_ms:.2f} ms", "", "")
    table.add_row("query p95", f"{r.p95_ms:.2f} ms", "", "")
    table.add_row("query p99", f"{r.p99_ms:.2f} ms", f"≤ {t['p99_ms']:g} ms", _mark(r.p99_ms <= t["p99_ms"]))
    table.add_row("index build", f"{r.build_seconds:.3f} s", f"≤ {t['build_seconds']:g} s",
                  _mark(r.build_seconds <= t["build_seconds"]))
    table.add_row(f"snapshot load ({r.snapshot_store}, {r.snapshot_bytes / 1e6:.1f} MB)",
                  f"{r.snapshot_load_seconds:.3f} s", f"≤ {t['snapshot_load_seconds']:g} s",
                  _mark(r.snapshot_load_seconds <= t["snapshot_load_seconds"]))
    if r.reference_queries:
        table.add_row(f"full-scan reference (mean of {r.reference_queries})", f"{r.reference_mean_ms:.1f} ms", "", "")
        table.add_row("speed-up over full scan", f"{r.speedup:.0f}×", f"≥ {t['speedup']:g}×",
                      _mark(r.speedup >= t["speedup"]))
        table.add_row("same top recipes as full scan", "yes" if r.reference_agrees else "NO", "yes",
                      _mark(r.reference_agrees))
    stdout().print(table)


