#!/usr/bin/env bash
# Checks that `make up` works as root from a directory the `postgres` user cannot enter (a
# checkout under a 0700 home): clones this repository's HEAD into a fresh 0700 directory, runs
# `make up` there, waits until /api/v1/stats counts stored points, runs `make down`, and checks
# that everything stopped and that PostgreSQL's data went under /var/tmp (where the postgres
# user can reach it). Cleans up after itself, also on failure.
#
#   sudo scripts/check-up-private.sh     (env: UP_PROFILE=dev|release, default dev: the check is
#                                         about the start-up path, not the binaries' speed;
#                                         CARGO_TARGET_DIR to reuse a build; UP_TIMEOUT=900 s)
#
# Uses ports other than `make up`'s defaults, so it can run beside a running pipeline.
# Exit status 0 when the pipeline came up and went down cleanly, 1 otherwise.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
UP_PROFILE=${UP_PROFILE:-dev}
UP_TIMEOUT=${UP_TIMEOUT:-900}
API_PORT=${CHECK_API_PORT:-18080}
BROKER_LISTEN=127.0.0.1:${CHECK_BROKER_PORT:-19090}
PGPORT=${CHECK_PGPORT:-55499}
OPS_PORT=${CHECK_OPS_PORT:-19101}

fail() { echo "check-up-private: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (the case under test is root in a private directory)"
id postgres >/dev/null 2>&1 || echo "check-up-private: no postgres user yet; make up installs PostgreSQL" >&2

PRIVATE=$(mktemp -d /tmp/private-home.XXXXXX)
chmod 0700 "$PRIVATE"
CHECKOUT=$PRIVATE/checkout
UP_PID=
PGDATA_DIR=/var/tmp/telemetry-pipeline-$(printf '%s' "$CHECKOUT/.run/postgres" | sha1sum | cut -c1-12)

cleanup() {
  if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
    (cd "$CHECKOUT" && scripts/down.sh) >/dev/null 2>&1 || true
    kill -TERM "$UP_PID" 2>/dev/null || true
  fi
  rm -rf "$PRIVATE" "$PGDATA_DIR"
}
trap cleanup EXIT

git clone -q "$REPO" "$CHECKOUT"
if id postgres >/dev/null 2>&1 && (cd / && runuser -u postgres -- test -x "$CHECKOUT"); then
  fail "the postgres user can enter $CHECKOUT: the case is not reproduced"
fi
echo "check-up-private: make up in $CHECKOUT (profile $UP_PROFILE)"

export PORT=$API_PORT BROKER_LISTEN OPS_PORT
(cd "$CHECKOUT" && exec timeout "$UP_TIMEOUT" make up UP_PROFILE="$UP_PROFILE" PGPORT="$PGPORT") \
  >"$PRIVATE/up.log" 2>&1 &
UP_PID=$!

stats=
deadline=$((SECONDS + UP_TIMEOUT))
while [ $SECONDS -lt $deadline ]; do
  kill -0 "$UP_PID" 2>/dev/null || { tail -n 40 "$PRIVATE/up.log" >&2; fail "make up exited"; }
  stats=$(curl -fsS "http://127.0.0.1:$API_PORT/api/v1/stats" 2>/dev/null || true)
  # Up, and points flowed all the way from the CSV through the broker into PostgreSQL.
  if [ -n "$stats" ] && ! grep -q '"points":0[,}]' <<<"$stats"; then break; fi
  stats=
  sleep 1
done
[ -n "$stats" ] || { tail -n 40 "$PRIVATE/up.log" >&2; fail "/api/v1/stats counted no points in time"; }
echo "check-up-private: /api/v1/stats: ${stats:0:120}"
grep -q "cannot enter" "$PRIVATE/up.log" || fail "make up did not say where the data went"
[ -f "$PGDATA_DIR/postgres/data/PG_VERSION" ] || fail "no PostgreSQL data under $PGDATA_DIR"

(cd "$CHECKOUT" && scripts/down.sh) >"$PRIVATE/down.log" 2>&1 || { cat "$PRIVATE/down.log" >&2; fail "make down failed"; }
for _ in $(seq 1 300); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$UP_PID" 2>/dev/null && fail "make up still runs after make down"
wait "$UP_PID" || fail "make up exited with status $?"
curl -fsS -o /dev/null "http://127.0.0.1:$API_PORT/healthz" 2>/dev/null && fail "the api still answers"
if (cd "$CHECKOUT" && scripts/local-postgres.sh status) >/dev/null 2>&1; then
  fail "PostgreSQL still runs"
fi
UP_PID=
echo "check-up-private: ok (make up and make down as root from a 0700 directory; data in $PGDATA_DIR)"
