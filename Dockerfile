# syntax=docker/dockerfile:1
# f2f container image. Build: `docker build -t f2f .` (or `podman build --format docker -t f2f .`:
# podman's default OCI format drops HEALTHCHECK). Run: `docker run --read-only -p 8000:8000 f2f`:
# embedded SQLite in the /data volume, or set F2F_DATABASE_URL / F2F_REDIS_URL as the Helm chart does.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: f2f and its dependencies in a virtualenv, trimmed to what a server runs --------------
FROM ${PYTHON_IMAGE} AS build

# Every dependency ships a manylinux wheel for Python 3.11, so no compiler is needed; binutils only
# for `strip` (below). Nothing of this stage but /opt/venv reaches the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_COMPILE=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /src

# The dependencies first, exactly the locked versions with their hashes (requirements/runtime.txt, made
# by scripts/lock.sh), from that file alone, so this layer survives code changes; trimmed to
# what a server runs. Out go the test suites numpy and scipy ship (about 50 MB) and the debug sections
# some wheels leave in their extension modules (uvloop, sqlalchemy, PyYAML, greenlet, httptools,
# hiredis: about 25 MB); each stripped module is imported once to prove it still loads. The root
# filesystem is read-only at run time, so Python cannot cache bytecode then and every start would
# recompile (about +1 s per process): bytecode is written here for every package except numpy and
# scipy, and for those two only for what f2f imports (f2f_cli/recipes/index.py: numpy, scipy.sparse);
# the rest of numpy and scipy (about 15 MB of bytecode) is never loaded.
COPY requirements/runtime.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt \
    && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
    && find /opt/venv/lib -name '*.so' -not -path '*.libs/*' -exec sh -c \
           'case "$(readelf -S "$1")" in *.debug_info*) strip --strip-debug "$1" && echo "$1" ;; esac' sh {} \; \
           > /tmp/stripped \
    && /opt/venv/bin/python -c "import importlib; [importlib.import_module(p.split('site-packages/')[1].split('.')[0].replace('/', '.')) for p in open('/tmp/stripped').read().split()]" \
    && /opt/venv/bin/python -m compileall -q -j 0 -x '/site-packages/(numpy|scipy|pip|setuptools)/' /opt/venv/lib \
    && env -u PYTHONDONTWRITEBYTECODE /opt/venv/bin/python -c "import numpy, numpy.typing, scipy.sparse" \
    && rm -f /tmp/requirements.txt /tmp/stripped

# Traces (README, "Traces"; the chart's `tracing` values): `--build-arg WITH_OTEL=true` adds the `otel` extra
# at the versions the suite ran on (requirements/otel.txt: the runtime list plus OpenTelemetry). Without it
# the image has no OpenTelemetry and f2f refuses OTEL_* settings that ask for traces (exit 2).
ARG WITH_OTEL=false
COPY requirements/otel.txt /tmp/otel.txt
RUN if [ "$WITH_OTEL" = "true" ]; then /opt/venv/bin/pip install --require-hashes -r /tmp/otel.txt; fi \
    && rm -f /tmp/otel.txt

# Then f2f itself (.dockerignore lets in only pyproject.toml, README.md and the package sources), its
# bytecode (built with the locked setuptools and wheel), and pip, setuptools and wheel go: nothing is
# installed at run time.
COPY requirements/build.txt /tmp/build.txt
COPY . ./
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/build.txt \
    && /opt/venv/bin/pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip uninstall -q -y pip setuptools wheel \
    && /opt/venv/bin/python -m compileall -q -j 0 -x '/site-packages/(numpy|scipy)/' /opt/venv/lib \
    && /opt/venv/bin/f2f --version

# ---- runtime: the virtualenv, a non-root user, a data volume, nothing else --------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="f2f" \
      org.opencontainers.image.description="Fridge2Fork backend and operations toolkit" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 f2f \
    && useradd --system --uid 10001 --gid f2f --home-dir /data --no-create-home --shell /usr/sbin/nologin f2f \
    && mkdir -p /data \
    && chown f2f:f2f /data

COPY --from=build /opt/venv /opt/venv

# The embedded default lives in the /data volume, the one place f2f writes, so the image runs with a
# read-only root. F2F_HOST/F2F_PORT are what `f2f serve` binds and what the HEALTHCHECK calls.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    F2F_DATABASE_URL=sqlite:////data/f2f.db \
    F2F_HOST=0.0.0.0 \
    F2F_PORT=8000

VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8000

# A wildcard bind address is reached on loopback; no proxy from the environment is consulted.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as r; h = os.environ.get('F2F_HOST') or '127.0.0.1'; h = {'0.0.0.0': '127.0.0.1', '::': '::1'}.get(h, h); h = '[' + h + ']' if ':' in h else h; u = 'http://' + h + ':' + os.environ.get('F2F_PORT', '8000') + '/healthz'; sys.exit(r.build_opener(r.ProxyHandler({})).open(u, timeout=2).status != 200)"]

ENTRYPOINT ["f2f"]
CMD ["serve"]
