#!/usr/bin/env bash
# `make test-coverage`: line coverage of every crate with cargo llvm-cov, including the code
# the tests run inside the spawned binaries (built instrumented first), a summary per crate,
# and an HTML report in target/coverage/html.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}

if ! cargo llvm-cov --version >/dev/null 2>&1; then
  rustup component add llvm-tools-preview
  cargo install cargo-llvm-cov --locked
fi

cargo llvm-cov clean --workspace
(
  # shellcheck disable=SC1090
  source <(cargo llvm-cov show-env --sh 2>/dev/null)
  cargo build --workspace --bins
  cargo test --workspace --no-fail-fast
  cargo llvm-cov report --summary-only >"$TARGET/coverage-workspace.txt"
  cargo llvm-cov report --html --output-dir "$TARGET/coverage"
)
# The workspace report leaves out the nested broker/log crate; measure it on its own.
cargo llvm-cov -p broker-log --summary-only >"$TARGET/coverage-broker-log.txt" 2>/dev/null

cat "$TARGET/coverage-workspace.txt"
echo
echo "line coverage per crate:"
{
  awk '$1 ~ /\.rs$/ {split($1, p, "/"); print p[1], $8, $9}' "$TARGET/coverage-workspace.txt"
  awk '$1 ~ /\.rs$/ {print "broker/log", $8, $9}' "$TARGET/coverage-broker-log.txt"
} | awk '{lines[$1] += $2; missed[$1] += $3}
         END {for (c in lines) printf "  %-11s %6d lines  %5.1f%%\n", c, lines[c], 100 * (lines[c] - missed[c]) / lines[c]}' | sort
echo "HTML report: $TARGET/coverage/html/index.html"
