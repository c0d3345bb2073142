#!/usr/bin/env bash
# The whole test suite on a fresh machine: venv, install, services, lint, types, tests.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Bytecode caches on: pytest keeps its rewritten test modules, and every `f2f` process a test starts reuses
# compiled modules, instead of each pytest process and each spawn compiling them again.
unset PYTHONDONTWRITEBYTECODE
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Exactly the locked versions, hash-checked (requirements/, made by scripts/lock.sh from pyproject.toml);
# f2f itself without build isolation, so its build tools are the locked ones too.
.venv/bin/python -m pip install -q --require-hashes -r requirements/dev.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
# Helm as a library for the chart tests; its metadata says Python 3.12 but it runs on 3.11.
.venv/bin/python -m pip install -q --require-hashes --no-deps --ignore-requires-python -r requirements/helm-sdkpy.txt
# A pyproject.toml edited without refreshing the lock fails here, before anything runs on a stale environment.
echo "== lock"
UV=.venv/bin/uv bash scripts/lock.sh --check

bash scripts/services.sh

# The container test (tests/container, marker `container`) builds and runs the image with podman,
# through the shared tool beside this checkout. On a machine without podman, the tool installs it
# (root only), makes the base image and fills the build cache here, so its output is in this log;
# where podman cannot be had the test is skipped and pytest's summary says why.
image_tool=${F2F_CONTAINER_IMAGE_TOOL:-../shared/tools/container-image.sh}
if ! command -v podman >/dev/null 2>&1 && [ -f "$image_tool" ] && [ "$(id -u)" -eq 0 ]; then
    echo "== podman (first use: installing it and building the image cache)"
    if warm=$(bash "$image_tool" . localhost/f2f-test:warm-up); then
        podman rmi --force "$warm" >/dev/null
    else
        echo "podman could not be installed or the image did not build; tests/container will say why" >&2
    fi
fi

echo "== ruff"
.venv/bin/ruff check f2f_cli migrations tests scripts
echo "== import-linter (layer rules, docs/ARCHITECTURE.md)"
# Quiet when every contract holds; the full report when one breaks.
out=$(.venv/bin/lint-imports --no-cache 2>&1) || { echo "$out"; exit 1; }
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
