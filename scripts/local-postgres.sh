#!/usr/bin/env bash
# Initialise (once) and start a local PostgreSQL in a folder of this checkout, for `make up`
# and `make db-setup`. Runs the server as the `postgres` user when invoked as root, because
# PostgreSQL refuses to run as root. Installs PostgreSQL with apt-get when initdb is missing.
#
#   scripts/local-postgres.sh start|stop|status   (env: PGDIR=.run/postgres PGPORT=55432)
set -euo pipefail

PGDIR=${PGDIR:-$PWD/.run/postgres}
PGPORT=${PGPORT:-55432}

find_bin() {
  if [ -n "${PG_BIN_DIR:-}" ]; then echo "$PG_BIN_DIR"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# As root, PostgreSQL's tools run as `postgres`, from `/` (they cannot even start in a working
# directory the postgres user may not enter, such as a checkout under a 0700 home).
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# As root in a private directory (a checkout under a 0700 home), the postgres user cannot reach
# $PGDIR at all: the data then lives under /var/tmp, in a folder named after the checkout, so
# start and stop find the same one.
resolve_pgdir() {
  [ "$(id -u)" = 0 ] || return 0
  mkdir -p "$PGDIR"
  chown postgres:postgres "$PGDIR"
  if ! (cd / && runuser -u postgres -- test -x "$PGDIR" -a -w "$PGDIR"); then
    local private=$PGDIR
    PGDIR=/var/tmp/telemetry-pipeline-$(printf '%s' "$private" | sha1sum | cut -c1-12)/postgres
    mkdir -p "$PGDIR"
    echo "note: user postgres cannot enter $private (a private directory); PostgreSQL data is in $PGDIR" >&2
  fi
}

ensure_installed() {
  local bin; bin=$(find_bin)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL not found; installing it with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
}

start() {
  ensure_installed
  local bin; bin=$(find_bin)
  mkdir -p "$PGDIR"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$PGDIR"; fi
  if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
    echo "postgres" > "$PGDIR/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDIR/pwfile"
    as_pg "$bin/initdb" -D "$PGDIR/data" -U postgres -E UTF8 --auth=md5 --pwfile="$PGDIR/pwfile" >"$PGDIR/initdb.log"
    rm -f "$PGDIR/pwfile"
  fi
  if as_pg "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    echo "PostgreSQL already running on port $PGPORT"
  else
    as_pg "$bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
      -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
    echo "PostgreSQL started on 127.0.0.1:$PGPORT (data in $PGDIR/data)"
  fi
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -p "$PGPORT" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='telemetry'" postgres | grep -q 1; then
    PGPASSWORD=postgres psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE telemetry" postgres
  fi
}

stop() {
  local bin; bin=$(find_bin)
  [ -n "$bin" ] && [ -f "$PGDIR/data/PG_VERSION" ] || return 0
  as_pg "$bin/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
  echo "PostgreSQL stopped"
}

resolve_pgdir

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) as_pg "$(find_bin)/pg_ctl" -D "$PGDIR/data" status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
