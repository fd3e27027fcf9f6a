#!/usr/bin/env bash
# `make down`: asks a running `make up` to stop everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$PWD/.run
if compgen -G "$RUN/pids/*.pid" >/dev/null; then
  touch "$RUN/stop"
  for _ in $(seq 1 200); do compgen -G "$RUN/pids/*.pid" >/dev/null || break; sleep 0.1; done
fi
# Whatever is left (make up killed hard): stop it directly.
for f in "$RUN"/pids/*.pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
PGDIR=$RUN/postgres scripts/local-postgres.sh stop
