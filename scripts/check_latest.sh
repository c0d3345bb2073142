#!/usr/bin/env bash
# Drift check: would f2f still pass on the newest releases pyproject.toml allows?
#
#   bash scripts/check_latest.sh                 Python 3.11, 3.12 and 3.13 (each one found on this machine)
#   bash scripts/check_latest.sh 3.12            one version
#
# For each Python it installs the newest allowed releases (pyproject.toml's ranges; the lock is ignored) into a
# throw-away venv, prints what moved against requirements/dev.txt (name: locked -> newest), and runs ruff, mypy,
# lint-imports and the fast lane (pytest -m "not services"). It changes nothing in the checkout and is not
# part of scripts/test.sh, so a new release never breaks CI: run it before refreshing the lock
# (`bash scripts/lock.sh --upgrade`), or before raising an upper bound in pyproject.toml.
# Exit status: 0 when every Python found passed, 1 when a check failed, 2 when no Python was found.
set -uo pipefail  # no -e: a failing check is reported and the next Python still runs
cd "$(dirname "$0")/.."

versions=("$@")
if [ "${#versions[@]}" -eq 0 ]; then
    versions=(3.11 3.12 3.13)
fi

runs_as() {  # runs_as PYTHON VERSION: the interpreter starts and is that version (pyenv shims may not)
    [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$2" ]
}

find_python() {
    local version=$1 candidate prefix
    if command -v pyenv >/dev/null 2>&1 && prefix=$(pyenv prefix "$version" 2>/dev/null) \
            && runs_as "$prefix/bin/python$version" "$version"; then
        echo "$prefix/bin/python$version"; return 0
    fi
    for prefix in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*; do
        if runs_as "$prefix/bin/python$version" "$version"; then echo "$prefix/bin/python$version"; return 0; fi
    done
    for candidate in "python$version" python3; do
        if command -v "$candidate" >/dev/null 2>&1 && runs_as "$candidate" "$version"; then
            command -v "$candidate"; return 0
        fi
    done
    return 1
}

# pip's notes about index locations it cannot read, left out; its real warnings and errors stay.
pip_quiet() {
    "$@" 2> >(grep -v '^WARNING: Location .* is ignored' >&2)
}

# name==version for every pin in the dev lock (the first pin of a name when markers split it).
locked=$(sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\)==\([^ ;\\]*\).*/\1 \2/p' requirements/dev.txt requirements/helm-sdkpy.txt)

work=$(mktemp -d -t f2f-check-latest-XXXXXX)
trap 'rm -rf "$work"' EXIT
declare -A results=()
found=0

for version in "${versions[@]}"; do
    echo "=================== Python $version"
    if ! python=$(find_python "$version"); then
        echo "Python $version not found (PATH, pyenv): skipped"
        results[$version]="skipped (not found)"
        continue
    fi
    found=1
    echo "using $python ($("$python" --version 2>&1))"
    venv="$work/venv-$version"
    "$python" -m venv "$venv"
    py="$venv/bin/python"
    echo "== install the newest allowed releases"
    if ! { pip_quiet "$py" -m pip install -q --upgrade pip \
            && pip_quiet "$py" -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev,plot]" \
            && pip_quiet "$py" -m pip install -q --upgrade --no-deps --ignore-requires-python "helm-sdkpy>=0.1.32"; }
    then
        echo "install failed on Python $version"
        results[$version]="FAILED: install"
        continue
    fi
    echo "== moved against the lock (name: locked -> newest)"
    newest=$("$py" -m pip list --format=freeze 2>/dev/null)
    moved=0
    while read -r name pinned; do
        [ -n "$name" ] || continue
        now=$(printf '%s\n' "$newest" | awk -F'==' -v n="$name" 'tolower($1)==tolower(n) {print $2; exit}')
        if [ -n "$now" ] && [ "$now" != "$pinned" ]; then
            echo "  $name: $pinned -> $now"
            moved=$((moved + 1))
        fi
    done <<< "$(printf '%s\n' "$locked" | awk '!seen[tolower($1)]++')"
    [ "$moved" -gt 0 ] || echo "  nothing: the lock is the newest"
    failed=()
    echo "== ruff"
    "$venv/bin/ruff" check --no-cache f2f_cli migrations tests scripts || failed+=(ruff)
    echo "== mypy"
    "$venv/bin/mypy" --cache-dir "$work/mypy-$version" || failed+=(mypy)
    echo "== import-linter"
    # Quiet when every contract holds; the full report when one breaks (as in scripts/test.sh).
    out=$("$venv/bin/lint-imports" --no-cache 2>&1) && echo "contracts kept" || { echo "$out"; failed+=(lint-imports); }
    echo "== fast lane"
    # The progress lines left out; failures and the summary stay.
    "$py" -m pytest -m "not services" -p no:cacheprovider -q --no-header \
        | grep -vE '^[.sxXFE]+ +\[ *[0-9]+%\]$' || failed+=(pytest)
    if [ "${#failed[@]}" -eq 0 ]; then
        results[$version]="passed ($moved moved)"
    else
        results[$version]="FAILED: ${failed[*]} ($moved moved)"
    fi
done

echo "=================== summary"
status=0
for version in "${versions[@]}"; do
    echo "Python $version: ${results[$version]}"
    case ${results[$version]} in FAILED*) status=1 ;; esac
done
if [ "$found" -eq 0 ]; then
    exit 2
fi
exit "$status"
