# syntax=docker/dockerfile:1
# f2f container image: `docker build -t f2f .`, then `docker run -p 8000:8000 f2f`
# (embedded SQLite in /data) or set F2F_DATABASE_URL / F2F_REDIS_URL as the Helm chart does.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: install f2f and its dependencies into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for dependencies without a wheel for this platform; it stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# hadolint ignore=DL3013
RUN pip install --upgrade pip setuptools wheel

WORKDIR /src
COPY pyproject.toml README.md* ./
COPY f2f_cli ./f2f_cli
RUN pip install . \
    && python -m compileall -q /opt/venv/lib \
    && f2f --version

# ---- runtime: the virtualenv, a non-root user, nothing else -----------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="f2f" \
      org.opencontainers.image.description="Fridge2Fork backend and operations toolkit" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 f2f \
    && useradd --system --uid 10001 --gid f2f --home-dir /data --no-create-home --shell /usr/sbin/nologin f2f \
    && mkdir -p /data \
    && chown f2f:f2f /data

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# The embedded default (no F2F_DATABASE_URL) writes ./f2f.db: /data is the one writable place.
WORKDIR /data
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["f2f"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
