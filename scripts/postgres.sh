#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for trying the Dagster Postgres instance locally.
#
#   scripts/postgres.sh install          # apt-get install -y postgresql (Debian), if missing
#   eval "$(scripts/postgres.sh start)"  # initdb + start; prints DAGSTER_PG_* exports
#   scripts/postgres.sh stop             # stop the server and delete its data
#
# Data, socket and password live under $WXPLAT_PG_DIR (default .wxplat/postgres). The server
# listens on 127.0.0.1 only, password authentication (scram-sha-256). As root the server runs
# as the `postgres` user (PostgreSQL refuses to run as root). tests/test_postgres_instance.py
# starts its own server the same way and does not need this script.
set -euo pipefail

DIR="${WXPLAT_PG_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.wxplat/postgres}"
PORT="${WXPLAT_PG_PORT:-55432}"

pg_bin() {
    if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$found" ]] || { echo "PostgreSQL's $1 not found: run '$0 install'" >&2; exit 1; }
    echo "$found"
}

as_pg() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
    install)
        if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
            apt-get update
            apt-get install -y postgresql
        fi
        ;;
    start)
        initdb="$(pg_bin initdb)"
        pg_ctl="$(pg_bin pg_ctl)"
        mkdir -p "$DIR"
        if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
            umask 077
            head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$DIR/password"
            [[ "$(id -u)" == 0 ]] && chown -R postgres: "$DIR"
            as_pg "$initdb" -D "$DIR/data" -U dagster --auth=scram-sha-256 \
                --pwfile="$DIR/password" --no-locale --encoding=UTF8 >"$DIR/initdb.log"
        fi
        as_pg "$pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR" start >&2
        echo "export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=$PORT DAGSTER_PG_DB=postgres" \
            "DAGSTER_PG_USERNAME=dagster DAGSTER_PG_PASSWORD=$(cat "$DIR/password")"
        ;;
    stop)
        if [[ -f "$DIR/data/postmaster.pid" ]]; then
            as_pg "$(pg_bin pg_ctl)" -D "$DIR/data" -m fast -w -t 30 stop >&2
        fi
        rm -rf "$DIR"
        ;;
    *)
        echo "usage: $0 install|start|stop" >&2
        exit 2
        ;;
esac
