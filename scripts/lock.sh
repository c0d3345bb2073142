#!/usr/bin/env bash
# The lock: every install path (README, scripts/test.sh, the Dockerfile, the wheel test) installs these
# exact versions with their hashes. Refresh it here, never by hand:
#
#   bash scripts/lock.sh                          re-resolve after editing pyproject.toml (keeps other pins)
#   bash scripts/lock.sh --upgrade                newest releases pyproject.toml allows (see scripts/check_latest.sh)
#   bash scripts/lock.sh --upgrade-package NAME   one package
#   bash scripts/lock.sh --check                  exit 1 when the lock no longer matches pyproject.toml
#
# uv's pip-compile resolves for Python 3.11 to 3.13 at once (--universal; markers pick per version) and
# writes plain requirements files with sha256 hashes that stock pip installs with --require-hashes.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-.venv/bin/uv}
if ! [ -x "$UV" ]; then
    UV=$(command -v uv || true)
fi
if [ -z "$UV" ]; then
    echo "lock.sh: uv not found; install the dev lock first (bash scripts/test.sh makes .venv with it)" >&2
    exit 2
fi

check=0
args=()
for arg in "$@"; do
    if [ "$arg" = "--check" ]; then check=1; else args+=("$arg"); fi
done

out=requirements
if [ "$check" -eq 1 ]; then
    # Compile into copies: uv keeps every pin an output file already holds, so an unchanged pyproject.toml
    # gives the same bytes and any difference means the lock is stale.
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    cp requirements/*.txt "$out"/
fi

compile() {
    "$UV" pip compile --quiet --universal --generate-hashes --custom-compile-command "bash scripts/lock.sh" "$@"
}
compile pyproject.toml --python-version 3.11 --all-extras -o "$out/dev.txt" ${args[@]+"${args[@]}"}
# The image's list: the same versions as the dev lock, runtime dependencies only.
pins=$(mktemp)
sed -n 's/ \\$//; /^[A-Za-z0-9]/p' "$out/dev.txt" > "$pins"
compile pyproject.toml --python-version 3.11 --no-annotate -c "$pins" -o "$out/runtime.txt"
# The image's optional traces (docker build --build-arg WITH_OTEL=true): runtime plus the otel extra, same versions.
compile pyproject.toml --python-version 3.11 --no-annotate --extra otel -c "$pins" -o "$out/otel.txt"
# The image's build tools (pyproject.toml's [build-system]), for `pip install --no-build-isolation .`.
python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))" \
    | compile - --python-version 3.11 --no-annotate -c "$pins" -o "$out/build.txt"
rm -f "$pins"
# helm-sdkpy (chart lint in the tests) says Python >= 3.12 but runs on 3.11; its one dependency, cffi,
# is in the dev lock, so it is pinned alone and installed with --no-deps --ignore-requires-python.
echo "helm-sdkpy>=0.1.32" | compile - --no-deps --python-version 3.12 -o "$out/helm-sdkpy.txt" \
    ${args[@]+"${args[@]}"}

if [ "$check" -eq 1 ]; then
    stale=0
    for f in dev.txt runtime.txt otel.txt build.txt helm-sdkpy.txt; do
        if ! diff -q "requirements/$f" "$out/$f" >/dev/null; then
            echo "lock: requirements/$f no longer matches pyproject.toml:" >&2
            diff -u "requirements/$f" "$out/$f" | grep -E '^[-+][A-Za-z0-9]' | head -20 >&2 || true
            stale=1
        fi
    done
    if [ "$stale" -eq 1 ]; then
        echo "lock: refresh it with 'bash scripts/lock.sh' and commit requirements/" >&2
        exit 1
    fi
fi
