"""``f2f bench``: measurements an operator or CI can rerun and compare."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from f2f_cli.cli.common import JsonOpt, cli_errors, load_settings, plural, print_json, stderr, stdout, styled
from f2f_cli.errors import RedisNotConfigured

if TYPE_CHECKING:
    from f2f_cli.bench.backup import BackupBenchResult
    from f2f_cli.bench.host import Machine
    from f2f_cli.bench.http import HttpBenchResult
    from f2f_cli.bench.recommend import RecommendBenchResult
    from f2f_cli.bench.session_stores import SessionsBenchResult
    from f2f_cli.bench.stats import LatencyStats

app = typer.Typer(
    help="Measure the stores, the recommender and the HTTP path.\n\nExample:\n\n  f2f bench recommend --recipes 100000",
    no_args_is_help=True,
    add_completion=False,
)

PlotOpt = Annotated[
    Path | None, typer.Option("--plot", help="Also write a latency chart (.png or .svg; needs f2f\\[plot]).")
]
SeedOpt = Annotated[int, typer.Option(help="Random seed of the generated data.")]


def _mark(ok: bool, missed: str = "missed target") -> Text:
    return Text("ok", "green") if ok else Text(missed, "red")


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
    """Recommender latency on a Zipf-distributed synthetic catalog, against a full Python scan.

    Examples:

      f2f bench recommend --recipes 100000

      f2f bench recommend --recipes 20000 --redis --json
    """
    from f2f_cli.bench.recommend import redis_snapshot_store, run_recommend_bench

    store = None
    if redis:
        settings = load_settings(database=False)
        if not settings.redis_url:
            raise RedisNotConfigured("--redis round-trips the snapshot through Redis")
        store = redis_snapshot_store(settings)
    err = stderr()
    result = run_recommend_bench(
        recipes=recipes, queries=queries, fridge_size=fridge_size, limit=limit,
        reference_queries=reference_queries, seed=seed, snapshot_store=store,
        progress=None if json else lambda msg: err.print(f"{msg}…", style="dim"),
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


def _progress(json: bool) -> Callable[[str], None]:
    err = stderr()
    return (lambda _msg: None) if json else (lambda msg: err.print(f"{msg}…", style="dim"))


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _machine_line(m: Machine) -> str:
    parts = [f"{m.cpu_count} CPU ({m.cpu_model})", f"Python {m.python}"]
    if m.redis:
        parts.append(f"Redis {m.redis}")
    if m.postgresql:
        parts.append(f"PostgreSQL {m.postgresql}")
    elif m.sql_backend:
        parts.append(m.sql_backend)
    if m.load_generator:
        parts.append(m.load_generator)
    line = "machine: " + ", ".join(parts)
    return line + (f" — {m.note}" if m.note else "")


def _stats_row(label: str, op: str, st: LatencyStats) -> list[str]:
    return [label, op, f"{st.ops:,}", f"{st.ops_per_second:,.0f}", _ms(st.p50_ms), _ms(st.p95_ms), _ms(st.p99_ms),
            str(st.errors) if st.errors else ""]


@app.command("sessions")
@cli_errors
def sessions(
    store: Annotated[str, typer.Option(help="sql, redis, dual or all.")] = "all",
    ops: Annotated[int, typer.Option(min=1, help="Operations of each kind per store.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Operations in flight at once.")] = 8,
    ingredients: Annotated[int, typer.Option(min=0, max=999, help="Ingredients per session (K).")] = 10,
    rounds: Annotated[int, typer.Option(min=1, max=100, help="Interleaved rounds the ops are split into.")] = 5,
    seed: SeedOpt = 42,
    plot: PlotOpt = None,
    json: JsonOpt = False,
) -> None:
    """Session stores side by side: create/get/add/remove throughput and latency, Redis/SQL ratios,
    the plan's JSON-string design as a reference, memory per session and a lost-write check.

    SQL is F2F_DATABASE_URL (PostgreSQL for honest numbers), Redis is F2F_REDIS_URL. Everything
    the bench creates is deleted at the end.

    Example:

      f2f bench sessions --store all --ops 5000 --concurrency 8 --plot s.svg
    """
    from f2f_cli.bench.plot import check_plot_path, plot_latencies
    from f2f_cli.bench.session_stores import STORES, run_sessions_bench
    from f2f_cli.cli.common import fail
    from f2f_cli.errors import EXIT_USAGE

    chosen = list(STORES) if store == "all" else [store]
    if store != "all" and store not in STORES:
        raise fail(f"--store must be one of {', '.join(STORES)} or all", EXIT_USAGE)
    if plot is not None:
        check_plot_path(plot)
    settings = load_settings()
    result = run_sessions_bench(
        settings, stores=chosen, ops=ops, concurrency=concurrency, ingredients=ingredients, rounds=rounds,
        seed=seed, progress=_progress(json),
    )
    if plot is not None:
        plot_latencies(plot, f"f2f bench sessions: {ops} ops/store, concurrency {concurrency}, K={ingredients}",
                       {t: r for t, r in result.results.items()}, _machine_line(result.machine))
    if json:
        print_json(result)
        return
    _render_sessions(result)
    if plot is not None:
        stderr().print(f"chart written to {plot}")


def _render_sessions(r: SessionsBenchResult) -> None:
    out = stdout()
    out.print(_machine_line(r.machine))
    table = Table("target", "op", "ops", "ops/s", "p50 ms", "p95 ms", "p99 ms", "errors", title=(
        f"session stores: {r.ops_per_store:,} ops of each kind per store in {r.rounds} interleaved rounds, "
        f"concurrency {r.concurrency}, {r.ingredients} ingredients per session, seed {r.seed}"))
    for target, by_op in r.results.items():
        for op, st in by_op.items():
            table.add_row(*_stats_row(target, op, st))
        table.add_section()
    out.print(table)
    if r.ratios:
        claim = Table("op", "SQL p50", "Redis p50", "SQL/Redis p50", "Redis/SQL ops/s", "\"10× faster\"",
                      title="the plan's claim: Redis reads 10× faster than PostgreSQL")
        for q in r.ratios:
            claim.add_row(q.op, _ms(q.sql_p50_ms), _ms(q.redis_p50_ms), _times(q.speedup_p50),
                          _times(q.throughput_ratio), q.verdict)
        out.print(claim)
    if r.raw_ratios:
        raw = Table("store", "op", "raw call", "store p50", "raw p50", "ratio", "target", "",
                    title="store operations against the bare client call underneath (same statement)")
        for w in r.raw_ratios:
            raw.add_row(w.store, w.op, w.raw, _ms(w.store_p50_ms), _ms(w.raw_p50_ms), _times(w.ratio_p50),
                        f"≤ {w.target:g}×", "" if w.meets_target is None else _mark(w.meets_target))
        out.print(raw)
    if r.plan_vs_redis:
        out.print("plan JSON design p50 / f2f Redis p50: " + ", ".join(
            f"{op} {_times(v)}" for op, v in r.plan_vs_redis.items()))
    if r.memory:
        m = r.memory
        out.print(f"Redis memory per session with {m.ingredients} ingredients (MEMORY USAGE, mean of "
                  f"{m.sessions_sampled}): f2f hash {m.f2f_hash_bytes:,.0f} B, plan JSON {m.plan_json_bytes:,.0f} B "
                  f"(f2f/plan {_times(m.f2f_over_plan)})")
    if r.race:
        lost = ", ".join(f"{t} {n}" for t, n in r.race.lost.items())
        out.print(f"{r.race.adds} concurrent adds of distinct ingredients to one session, lost: {lost}")
    for where, message in r.errors.items():
        out.print(styled((f"errors in {where}:", "yellow"), f" {message}"))
    for note in r.notes:
        out.print(f"note: {note}", style="dim")
    out.print(f"cleaned up: {plural(r.cleanup.get('sql_rows', 0), 'session row')}, "
              f"{plural(r.cleanup.get('redis_keys', 0), 'Redis key')}", style="dim")


@app.command("http")
@cli_errors
def http(
    duration: Annotated[float, typer.Option(min=1, help="Seconds of load per run.")] = 10,
    connections: Annotated[int, typer.Option(min=1, max=1024, help="Concurrent keep-alive connections.")] = 16,
    phase: Annotated[str, typer.Option(help="Phase f2f serves in: postgres or redis.")] = "redis",
    rounds: Annotated[int, typer.Option(min=1, max=20, help="Runs per server and endpoint (order alternates).")] = 2,
    sessions: Annotated[int, typer.Option(min=1, max=10_000, help="Sessions the requests rotate over.")] = 50,
    ingredients: Annotated[int, typer.Option(min=0, max=90, help="Ingredients per session.")] = 10,
    loadgen: Annotated[str, typer.Option(help="auto (wrk if installed), wrk or python.")] = "auto",
    warmup: Annotated[float, typer.Option(min=0, help="Untimed seconds per server before each endpoint.")] = 2,
    seed: SeedOpt = 42,
    plot: PlotOpt = None,
    json: JsonOpt = False,
) -> None:
    """'f2f serve' against a bare Starlette app doing the same single Redis/SQL call: requests/s,
    latency percentiles and the ratio per endpoint.

    Uses a dedicated database created next to F2F_DATABASE_URL (dropped afterwards) with the phase
    set before start, and a unique prefix on F2F_REDIS_URL (deleted afterwards).

    Example:

      f2f bench http --phase redis --duration 10 --connections 16 --plot http.png
    """
    from f2f_cli.bench.http import run_http_bench
    from f2f_cli.bench.plot import check_plot_path, plot_latencies
    from f2f_cli.bench.stats import LatencyStats
    from f2f_cli.cli.common import fail
    from f2f_cli.errors import EXIT_USAGE

    if loadgen not in ("auto", "wrk", "python"):
        raise fail("--loadgen must be auto, wrk or python", EXIT_USAGE)
    if plot is not None:
        check_plot_path(plot)
    settings = load_settings(database=False)
    result = run_http_bench(
        settings, phase=phase, duration=duration, connections=connections, rounds=rounds, sessions=sessions,
        ingredients=ingredients, seed=seed, loadgen=loadgen, warmup=warmup, progress=_progress(json),
    )
    if plot is not None:
        series: dict[str, dict[str, LatencyStats]] = {"f2f": {}, "baseline": {}}
        for sc in result.scenarios:
            for who, lr in (("f2f", sc.f2f), ("baseline", sc.baseline)):
                series[who][sc.label] = LatencyStats(
                    ops=lr.requests, errors=lr.errors + lr.non_2xx, seconds=lr.seconds,
                    ops_per_second=lr.requests_per_second, p50_ms=lr.p50_ms, p95_ms=lr.p95_ms, p99_ms=lr.p99_ms,
                    mean_ms=lr.mean_ms, max_ms=lr.max_ms)
        plot_latencies(plot, f"f2f bench http: phase {phase}, {connections} connections, {duration:g} s × "
                       f"{rounds} runs", series, _machine_line(result.machine))
    if json:
        print_json(result)
        return
    _render_http(result)
    if plot is not None:
        stderr().print(f"chart written to {plot}")


def _render_http(r: HttpBenchResult) -> None:
    out = stdout()
    out.print(_machine_line(r.machine))
    table = Table("endpoint", "server", "req/s", "p50 ms", "p90 ms", "p99 ms", "failed", "runs (req/s)", title=(
        f"HTTP, phase {r.phase}: {r.connections} connections, {r.duration:g} s per run, median of {r.rounds} runs, "
        f"{r.sessions} sessions × {r.ingredients} ingredients"))
    for sc in r.scenarios:
        for who, lr, runs in (("f2f", sc.f2f, sc.f2f_runs), ("baseline", sc.baseline, sc.baseline_runs)):
            table.add_row(sc.label, who, f"{lr.requests_per_second:,.0f}", _ms(lr.p50_ms), _ms(lr.p90_ms),
                          _ms(lr.p99_ms), str(lr.errors + lr.non_2xx) if lr.errors + lr.non_2xx else "",
                          ", ".join(f"{x.requests_per_second:,.0f}" for x in runs))
        table.add_section()
    out.print(table)
    ratios = Table("endpoint", "f2f / baseline req/s", "target", "", title="f2f against the bare baseline")
    for sc in r.scenarios:
        ratios.add_row(sc.label, _times(sc.ratio), f"≥ {sc.target:.0%}",
                       "" if sc.meets_target is None else _mark(sc.meets_target, "below target"))
    out.print(ratios)
    out.print(f"f2f serve logging: {r.f2f_logging}; it wrote {r.f2f_access_lines:,} access lines", markup=False)
    for note in r.notes:
        out.print(f"note: {note}", style="dim")
    out.print(f"cleaned up: {plural(r.cleanup.get('databases', 0), 'database')}, "
              f"{plural(r.cleanup.get('redis_keys', 0), 'Redis key')}", style="dim")


def _int_list(option: str, text: str, low: int, high: int) -> list[int]:
    from f2f_cli.cli.common import fail
    from f2f_cli.errors import EXIT_USAGE

    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise fail(f"{option} takes comma-separated whole numbers, e.g. 1,2,4", EXIT_USAGE) from None
    if not values or any(not low <= v <= high for v in values):
        raise fail(f"{option}: each value must be between {low} and {high}", EXIT_USAGE)
    return values


@app.command("backup")
@cli_errors
def backup(
    ingredients: Annotated[str, typer.Option(help="Session sizes K to fill and drain, comma-separated.")] = "10,90",
    workers: Annotated[str, typer.Option(help="Worker counts to drain with, comma-separated.")] = "1,2,4",
    sessions: Annotated[int, typer.Option(min=10, max=100_000, help="Sessions the writes rotate over.")] = 2000,
    fill_seconds: Annotated[float, typer.Option(min=1, max=120, help="Seconds f2f serve takes POSTs per fill.")] = 10,
    connections: Annotated[int, typer.Option(min=1, max=1024, help="wrk connections during a fill.")] = 16,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Worker batch size (f2f worker's).")] = 500,
    rate: Annotated[int, typer.Option(min=1, max=100_000, help="Writes/s of the lag run.")] = 3000,
    lag_seconds: Annotated[float, typer.Option(min=1, max=600, help="Seconds of the lag run.")] = 10,
    copy_sample: Annotated[int, typer.Option(min=0, max=100_000,
                                             help="Entries the COPY baseline writes (0: skip it).")] = 5000,
    mode: Annotated[str, typer.Option(help="all, drain (capacity) or lag.")] = "all",
    loadgen: Annotated[str, typer.Option(help="auto (wrk if installed), wrk or python.")] = "auto",
    json: JsonOpt = False,
) -> None:
    """Backup capacity of 'f2f worker' in the redis phase: drain rate against what one 'f2f serve'
    writes (1, 2, 4 workers; sessions of 10 and 90 ingredients), a bare psycopg COPY of the same rows,
    and the backup lag at a steady write rate with one worker.

    Uses a dedicated database next to F2F_DATABASE_URL (PostgreSQL; dropped afterwards) and a unique
    prefix on F2F_REDIS_URL (deleted afterwards). A Redis Cluster URL works for --mode lag.

    Example:

      f2f bench backup --ingredients 10,90 --workers 1,2,4 --rate 3000

      F2F_REDIS_URL=redis+cluster://127.0.0.1:7100 f2f bench backup --mode lag
    """
    from f2f_cli.bench.backup import run_backup_bench
    from f2f_cli.cli.common import fail
    from f2f_cli.errors import EXIT_USAGE

    if mode not in ("all", "drain", "lag"):
        raise fail("--mode must be all, drain or lag", EXIT_USAGE)
    if loadgen not in ("auto", "wrk", "python"):
        raise fail("--loadgen must be auto, wrk or python", EXIT_USAGE)
    sizes = _int_list("--ingredients", ingredients, 0, 900)
    counts = _int_list("--workers", workers, 1, 64)
    settings = load_settings()
    result = run_backup_bench(
        settings, ingredients=sizes, workers=counts, sessions=sessions, fill_seconds=fill_seconds,
        connections=connections, batch_size=batch_size, rate=rate, lag_seconds=lag_seconds, copy_sample=copy_sample,
        drain=mode in ("all", "drain"), lag=mode in ("all", "lag"), loadgen=loadgen, progress=_progress(json),
    )
    if json:
        print_json(result)
        return
    _render_backup(result)


def _render_backup(r: BackupBenchResult) -> None:
    out = stdout()
    out.print(_machine_line(r.machine))
    if r.drain:
        table = Table("K", "workers", "backlog", "drain s", "entries/s", "serve adds/s", "drain / serve",
                      "sessions applied", "ingredient rows", "worker CPU s", title=(
                          f"drain capacity ({r.redis} Redis): {r.sessions:,} sessions, fill {r.fill_seconds:g} s "
                          f"by one f2f serve with workers off, batch {r.batch_size}"))  # fmt: skip
        for sc in r.drain:
            for run in sc.runs:
                table.add_row(str(sc.ingredients), str(run.workers), f"{run.entries:,}", f"{run.seconds:.2f}",
                              f"{run.entries_per_second:,.0f}", f"{run.serve_adds_per_second:,.0f}",
                              _times(run.drain_over_serve), f"{run.sessions_applied:,}", f"{run.ingredient_rows:,}",
                              f"{run.worker_cpu_seconds:.2f}")  # fmt: skip
            table.add_section()
        out.print(table)
        goals = Table("K", "1 worker / 1 serve", "target", "", "COPY baseline entries/s", "1 worker / COPY",
                      title="goal: one worker drains at least 4× what one f2f serve writes")  # fmt: skip
        for sc in r.drain:
            goals.add_row(str(sc.ingredients), _times(sc.one_worker_over_serve), f"≥ {sc.target:g}×",
                          "" if sc.meets_target is None else _mark(sc.meets_target),
                          f"{sc.baseline_entries_per_second:,.0f} ({sc.baseline_entries:,} entries, "
                          f"{sc.baseline_rows:,} rows)", _times(sc.one_worker_over_baseline))  # fmt: skip
        out.print(goals)
    if r.lag is not None:
        g = r.lag
        lag = Table("writes/s asked", "achieved", "writes", "entries", "lag p50 ms", "p95", "p99", "max",
                    "backlog max", "target p99", "", title=f"backup lag with one worker ({r.redis} Redis)")
        lag.add_row(f"{g.target_rate:,}", f"{g.write_rate:,.0f}", f"{g.writes:,}", f"{g.entries:,}", _ms(g.p50_ms),
                    _ms(g.p95_ms), _ms(g.p99_ms), _ms(g.max_ms), f"{g.backlog_max:,}", f"≤ {g.target_p99_ms:g} ms",
                    "" if g.meets_target is None else _mark(g.meets_target))  # fmt: skip
        out.print(lag)
        if g.poll_indexed_ms is not None and g.poll_all_streams_ms is not None:
            out.print(f"Cluster: an idle worker poll through the backup index {g.poll_indexed_ms:.2f} ms; reading all "
                      f"16,384 slot streams {g.poll_all_streams_ms:,.0f} ms")  # fmt: skip
    for note in r.notes:
        out.print(Text(f"note: {note}", style="dim"))
    out.print(f"cleaned up: {plural(r.cleanup.get('databases', 0), 'database')}, "
              f"{plural(r.cleanup.get('redis_keys', 0), 'Redis key')}", style="dim")
