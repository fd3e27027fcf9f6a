#!/usr/bin/env bash
# `make up`: the whole pipeline on this machine, on the bundled sample CSV.
# PostgreSQL (local folder), the broker, one looping streamer, two collectors and the API.
# Ctrl-C (or `make down` from another terminal) stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=$PWD/.run
# Cargo's profile directory (`dev` builds into `debug`).
PROFILE_DIR=${UP_PROFILE:-release}
[ "$PROFILE_DIR" = dev ] && PROFILE_DIR=debug
BIN=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE_DIR
PGPORT=${PGPORT:-55432}
API_PORT=${PORT:-8080}
BROKER_LISTEN=${BROKER_LISTEN:-127.0.0.1:9090}
# The streamer's ops port; the two collectors' are the next two.
OPS_PORT=${OPS_PORT:-9101}
CSV=${CSV_PATH:-$PWD/data-sample/dcgm_metrics_20250718_134233.csv}
mkdir -p "$RUN/logs" "$RUN/pids"

PGPORT=$PGPORT PGDIR=$RUN/postgres scripts/local-postgres.sh start

export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:$PGPORT/telemetry"
export BROKER_URL="http://$BROKER_LISTEN"

pids=()
start() { # name, then the command
  local name=$1; shift
  "$@" >"$RUN/logs/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$RUN/pids/$name.pid"
  pids+=("$pid")
}

stop_all() {
  trap - INT TERM EXIT
  echo; echo "stopping…"
  # Producers first, then consumers, then the broker, so the pipeline drains in order.
  for name in streamer api collector-1 collector-2 broker; do
    local f="$RUN/pids/$name.pid"
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$(cat "$f" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
  done
  PGDIR=$RUN/postgres scripts/local-postgres.sh stop
  exit 0
}
trap stop_all INT TERM EXIT

wait_http() { # url, name
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$2 did not become ready; see $RUN/logs/$2.log" >&2
  tail -n 20 "$RUN/logs/$2.log" >&2 || true
  exit 1
}

start broker "$BIN/broker" --listen "$BROKER_LISTEN" --data-dir "$RUN/broker" --segment-bytes "${BROKER_SEGMENT_BYTES:-16777216}" \
  --retention-bytes "${BROKER_RETENTION_BYTES:-67108864}" --retention-ms "${BROKER_RETENTION_MS:-86400000}" \
  --auto-create-topics "${BROKER_AUTO_CREATE_TOPICS:-true}"
wait_http "http://$BROKER_LISTEN/readyz" broker
# Retention on by default (COLLECTOR_RETENTION, default 30d): neither disk fills by itself.
start collector-1 "$BIN/collector" --metrics-listen "127.0.0.1:$((OPS_PORT + 1))"
start collector-2 "$BIN/collector" --metrics-listen "127.0.0.1:$((OPS_PORT + 2))"
start streamer "$BIN/streamer" --csv "$CSV" --loop --rate "${STREAMER_RATE:-2000}" --metrics-listen "127.0.0.1:$OPS_PORT"
start api "$BIN/api" --listen "127.0.0.1:$API_PORT" --broker-url "http://$BROKER_LISTEN"
wait_http "http://127.0.0.1:$API_PORT/healthz" api

cat <<TXT

The pipeline is running (logs in .run/logs/):
  dashboard     http://127.0.0.1:$API_PORT/ui
  API           http://127.0.0.1:$API_PORT/api/v1/gpus
  API docs      http://127.0.0.1:$API_PORT/docs
  Prometheus    http://127.0.0.1:$API_PORT/prometheus (a Grafana datasource URL; promtool query)
  OpenAPI spec  http://127.0.0.1:$API_PORT/openapi.json
  metrics       broker http://$BROKER_LISTEN/metrics  api http://127.0.0.1:$API_PORT/metrics
                streamer http://127.0.0.1:$OPS_PORT/metrics  collectors http://127.0.0.1:$((OPS_PORT + 1))/metrics http://127.0.0.1:$((OPS_PORT + 2))/metrics
  PostgreSQL    $DATABASE_URL

Press Ctrl-C (or run \`make down\` elsewhere) to stop everything.
TXT

# Wait for any child to exit; if one dies, say so and stop the rest.
while true; do
  for name in broker collector-1 collector-2 streamer api; do
    f="$RUN/pids/$name.pid"
    if [ -f "$f" ] && ! kill -0 "$(cat "$f")" 2>/dev/null; then
      echo "$name exited; see $RUN/logs/$name.log" >&2
      stop_all
    fi
  done
  [ -f "$RUN/stop" ] && { rm -f "$RUN/stop"; stop_all; }
  sleep 1
done
