#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis the tests use are installed and running.
# Safe to run again: it only installs or starts what is missing.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

# PostgreSQL: installed and listening on 127.0.0.1:5432 with trust auth for root.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql postgresql-contrib
fi
if ! pg_ready; then
    log "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
pg_ready || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }
if ! psql -h 127.0.0.1 -U root -d test -Atc 'select 1' >/dev/null 2>&1; then
    log "creating the root role and the test database"
    as_root su postgres -c "psql -Atc \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='root') THEN CREATE ROLE root SUPERUSER LOGIN; END IF; END \\\$\\\$;\"" >/dev/null
    as_root su postgres -c "psql -Atc 'CREATE DATABASE test OWNER root'" >/dev/null 2>&1 || true
fi

# Redis: installed (server, cli, sentinel) and listening on 127.0.0.1:6379.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "installing Redis"
    apt_install redis-server redis-tools
fi
if ! command -v redis-sentinel >/dev/null 2>&1 && ! redis-server --help 2>&1 | grep -q sentinel; then
    apt_install redis-sentinel || true
fi
if ! redis_ready; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 30); do redis_ready && break; sleep 0.2; done
fi
redis_ready || { log "Redis did not come up on 127.0.0.1:6379"; exit 1; }
# wrk drives 'f2f bench http' (it falls back to a built-in client without it).
if ! command -v wrk >/dev/null 2>&1; then
    apt_install wrk || log "wrk not installed; 'f2f bench http' will use its built-in load generator"
fi
log "PostgreSQL and Redis are up"
