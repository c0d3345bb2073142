"""A description of the machine a bench ran on, so figures are never quoted without it."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import msgspec


class Machine(msgspec.Struct):
    cpu_count: int
    cpu_model: str
    platform: str
    python: str
    packages: dict[str, str]
    redis: str | None = None
    postgresql: str | None = None
    sql_backend: str | None = None
    load_generator: str | None = None
    note: str = ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine(
    *, redis: str | None = None, postgresql: str | None = None, sql_backend: str | None = None,
    load_generator: str | None = None,
) -> Machine:
    cpus = os.cpu_count() or 1
    return Machine(
        cpu_count=cpus,
        cpu_model=_cpu_model(),
        platform=platform.platform(),
        python=sys.version.split()[0],
        packages={p: _version(p) for p in ("f2f", "redis", "hiredis", "psycopg", "sqlalchemy", "starlette", "uvicorn")},
        redis=redis,
        postgresql=postgresql,
        sql_backend=sql_backend,
        load_generator=load_generator,
        note="load generator, servers and databases share these CPUs" if cpus <= 4 else "",
    )
