#!/usr/bin/env bash
# A/B dispatch benchmark: two binaries take turns (A, B, A, B, …) sending a
# digest to the same number of readers, each on a database of its own seeded
# alike, into one smtp-sink. Taking turns in one run keeps a shared, noisy
# machine's drift out of the comparison. It reports; it never asserts.
#
#   bench/ab.sh BIN_A BIN_B
#
# Environment: BENCH_BACKENDS ("sqlite postgres"), BENCH_N (100000),
# BENCH_ROUNDS (3 turns each), BENCH_CONCURRENCY (128), TIDINGS_BENCH_PG_URL,
# BENCH_ENV (extra VAR=value settings for both, e.g. DKIM keys), BENCH_ENV_B
# (for B only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[ $# -eq 2 ] || { echo "usage: bench/ab.sh BIN_A BIN_B" >&2; exit 2; }
bin_a=$(realpath "$1") bin_b=$(realpath "$2")
N=${BENCH_N:-100000}; ROUNDS=${BENCH_ROUNDS:-3}
backends=${BENCH_BACKENDS:-"sqlite postgres"}
concurrency=${BENCH_CONCURRENCY:-128}
pg_admin=${TIDINGS_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export PGOPTIONS="--client-min-messages=warning"
read -r -a env_both <<< "${BENCH_ENV:-}"
read -r -a env_b <<< "${BENCH_ENV_B:-}"

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
admin="bench-admin-token-0123456789"
source "$root/bench/lib.sh"

start_sink

for backend in $backends; do
  declare -A port=() rates=()
  for side in a b; do
    bin=$([ "$side" = a ] && echo "$bin_a" || echo "$bin_b")
    name="tidings_ab_$$_${backend}_$side"
    url=$(db_url "$backend" "$name")
    env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" migrate
    "$root/bench/seed.sh" "$url" orthopedic "$N"
    port[$side]=$(free_port)
    extra=("${env_both[@]}")
    [ "$side" = b ] && extra+=("${env_b[@]}")
    pids+=("$(serve "$url" "${port[$side]}" "${extra[@]}")")
    wait_healthy "${port[$side]}"
  done
  for round in $(seq 1 "$ROUNDS"); do
    for side in a b; do
      add_posts "${port[$side]}" "$round"
      read -r _ rate _ < <(digest_run "${port[$side]}")
      rates[$side]+="$rate "
      echo "  $backend round $round $side: $rate msg/s"
    done
  done
  ma=$(printf '%s\n' ${rates[a]} | median) mb=$(printf '%s\n' ${rates[b]} | median)
  echo "$backend: A ${rates[a]}(median $ma)  B ${rates[b]}(median $mb)  B/A $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.2f", b / a}')"
done
