#!/usr/bin/env bash
# Tidings benchmark. Builds the release binary, starts what it needs on
# loopback (postfix's smtp-sink, PostgreSQL), measures, prints a table and
# appends it to BENCHMARKS.md. It reports; it never asserts a time.
#
#   bench/run.sh            full run (100,000 and 1,000,000 recipients, both backends)
#   bench/run.sh --quick    a small run for CI, so the benchmark cannot rot
#
# Environment: TIDINGS_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# BENCH_BACKENDS ("sqlite postgres"), BENCH_CONCURRENCY (128), and for trial runs BENCH_N,
# BENCH_N_BIG, BENCH_RUNS, BENCH_WRK_SECS (recipients, big-run recipients, runs, signup seconds),
# BENCH_BIN (measure this binary instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
[ "${1:-}" = "--quick" ] && quick=1
if ((quick)); then
  N=2000; N_BIG=0; RUNS=1; WRK_SECS=3; RSA_SECS=1; N_IMPORT=2000; REF_MSGS=5000; STARTS=3; TIMING_ROUNDS=50; N_DASH=2000; DASH_SECS=2
else
  N=100000; N_BIG=1000000; RUNS=3; WRK_SECS=30; RSA_SECS=3; N_IMPORT=100000; REF_MSGS=20000; STARTS=5; TIMING_ROUNDS=200; N_DASH=1000000; DASH_SECS=10
fi
N_DASH=${BENCH_N_DASH:-$N_DASH}
TIMING_ROUNDS=${BENCH_TIMING_ROUNDS:-$TIMING_ROUNDS}
# Signed dispatch runs are fewer recipients: RSA signing is slow by design.
N_DKIM=${BENCH_N_DKIM:-$(( N < 20000 ? N : 20000 ))}
N=${BENCH_N:-$N}; N_BIG=${BENCH_N_BIG:-$N_BIG}; RUNS=${BENCH_RUNS:-$RUNS}; WRK_SECS=${BENCH_WRK_SECS:-$WRK_SECS}
backends=${BENCH_BACKENDS:-"sqlite postgres"}
concurrency=${BENCH_CONCURRENCY:-128}
pg_admin=${TIDINGS_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export PGOPTIONS="--client-min-messages=warning"

need=()
command -v smtp-sink >/dev/null || need+=(postfix)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v wrk >/dev/null || need+=(wrk)
command -v psql >/dev/null || need+=(postgresql-client)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tidings-target}"
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$BENCH_BIN # an A/B comparison against a binary built earlier
else
  cargo build --release --locked -q
  bin="$CARGO_TARGET_DIR/release/tidings"
fi

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

admin="bench-admin-token-0123456789"
# Known to the benchmark so it can sign form tokens as a client would get them.
secret="bench-secret-key-0123456789abcdef0123456789"

source "$root/bench/lib.sh"
start_sink

echo "reference: smtp-source -d -s 16 -m $REF_MSGS -l 5000 into smtp-sink"
ref_rates=()
for _ in $(seq 1 "$RUNS"); do
  t0=$(now_ns)
  smtp-source -d -s 16 -m "$REF_MSGS" -l 5000 "127.0.0.1:$sink_port"
  t1=$(now_ns)
  ref_rates+=("$(awk -v n="$REF_MSGS" -v t=$((t1 - t0)) 'BEGIN {printf "%.0f", n / (t / 1e9)}')")
done
ref=$(printf '%s\n' "${ref_rates[@]}" | median)
echo "  smtp-source: ${ref_rates[*]} msg/s (median $ref)"
# One core's RSA-2048 signing rate: what DKIM-signed dispatch is held to.
rsa_refs=()
for _ in $(seq 1 "$RUNS"); do
  rsa_refs+=("$(openssl speed -seconds "$RSA_SECS" rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {printf "%.0f", $6}')")
done
rsa_ref=$(printf '%s\n' "${rsa_refs[@]}" | median)
echo "  openssl speed rsa2048: ${rsa_refs[*]} signs/s on one core (median $rsa_ref)"

declare -A result
for backend in $backends; do
  echo "== $backend"
  name="tidings_bench_$$_$backend"
  url=$(db_url "$backend" "$name")
  env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" migrate
  t0=$(now_ns); "$root/bench/seed.sh" "$url" orthopedic "$N"; t1=$(now_ns)
  echo "  seeded $N readers in $(( (t1 - t0) / 1000000 )) ms"
  # At the tuned concurrency, then at the default settings (16
  # connections, as many as the reference's sessions).
  for setting in tuned default; do
    c=$([ "$setting" = default ] && echo 16 || echo "$concurrency")
    port=$(free_port); pid=$(serve "$url" "$port" TIDINGS_SMTP_CONCURRENCY="$c"); pids+=("$pid")
    wait_healthy "$port"
    rates=(); walls=(); triggers=()
    for run in $(seq 1 "$RUNS"); do
      add_posts "$port" "$setting-$run"
      read -r trig rate wall < <(digest_run "$port")
      echo "  $setting (concurrency $c), run $run: trigger ${trig} ms, dispatch ${rate} msg/s, wall clock ${wall} msg/s"
      rates+=("$rate"); walls+=("$wall"); triggers+=("$trig")
    done
    key=$([ "$setting" = default ] && echo default_ || true)
    result[$backend,${key}rate]=$(printf '%s\n' "${rates[@]}" | median)
    result[$backend,${key}rates]="${rates[*]}"
    result[$backend,${key}wall]=$(printf '%s\n' "${walls[@]}" | median)
    result[$backend,${key}trigger]=$(printf '%s\n' "${triggers[@]}" | median)
    result[$backend,${key}hwm]=$(( $(hwm_kb "$pid") / 1024 ))
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  done
  drop_db "$backend" "$name"

  # DKIM: the same dispatch with every copy signed: RSA 2048, Ed25519, and
  # both keys on every copy (two signatures).
  for algorithm in rsa ed25519; do
    key="$work/dkim-$algorithm.pem"
    [ -f "$key" ] || TIDINGS_LOG=error "$bin" dkim keygen --selector "bench-$algorithm" --algorithm "$algorithm" --out "$key" >/dev/null
  done
  printf '[[dkim]]\nselector = "bench-rsa"\nkey_file = "%s"\n\n[[dkim]]\nselector = "bench-ed25519"\nkey_file = "%s"\n' \
    "$work/dkim-rsa.pem" "$work/dkim-ed25519.pem" > "$work/dkim-both.toml"
  for algorithm in rsa ed25519 both; do
    name="tidings_bench_dkim_$$_${backend}_$algorithm"
    url=$(db_url "$backend" "$name")
    env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" migrate
    "$root/bench/seed.sh" "$url" orthopedic "$N_DKIM"
    if [ "$algorithm" = both ]; then
      signing=(TIDINGS_CONFIG="$work/dkim-both.toml")
    else
      signing=(TIDINGS_DKIM_SELECTOR="bench-$algorithm" TIDINGS_DKIM_KEY_FILE="$work/dkim-$algorithm.pem")
    fi
    port=$(free_port); pid=$(serve "$url" "$port" "${signing[@]}"); pids+=("$pid")
    wait_healthy "$port"
    add_posts "$port" "dkim-$algorithm"
    read -r trig rate wall < <(digest_run "$port")
    echo "  DKIM $algorithm, $N_DKIM: dispatch ${rate} msg/s (wall clock ${wall} msg/s)"
    result[$backend,dkim_$algorithm]=$rate
    [ "$algorithm" = rsa ] && result[$backend,dkim_hwm]=$(( $(hwm_kb "$pid") / 1024 ))
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    drop_db "$backend" "$name"
  done

  # Two `tidings worker` processes sending one digest from one PostgreSQL,
  # against one worker, same run; the server only serves.
  if [ "$backend" = postgres ]; then
    for workers in 1 2; do
      name="tidings_bench_workers_$$_$workers"
      url=$(db_url "$backend" "$name")
      env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" migrate
      "$root/bench/seed.sh" "$url" orthopedic "$N"
      port=$(free_port); pid=$(launch "$url" "$port" "serve --no-dispatch"); pids+=("$pid")
      wait_healthy "$port"
      worker_pids=()
      for _ in $(seq 1 "$workers"); do
        wpid=$(launch "$url" "$(free_port)" worker TIDINGS_SMTP_CONCURRENCY=16); pids+=("$wpid"); worker_pids+=("$wpid")
      done
      add_posts "$port" "workers-$workers"
      read -r trig rate wall < <(digest_run "$port")
      sent=$(psql -qtA "$url" -c "SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
      echo "  $workers worker(s), default settings each: dispatch ${rate} msg/s (wall clock ${wall} msg/s), $sent sent"
      result[$backend,workers_$workers]=$wall
      kill -TERM "$pid" "${worker_pids[@]}"; wait "$pid" "${worker_pids[@]}" 2>/dev/null || true
      drop_db "$backend" "$name"
    done
  fi

  if ((N_BIG)); then
    name="tidings_bench_big_$$_$backend"
    url=$(db_url "$backend" "$name")
    env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" migrate
    "$root/bench/seed.sh" "$url" orthopedic "$N_BIG"
    port=$(free_port); pid=$(serve "$url" "$port"); pids+=("$pid")
    wait_healthy "$port"
    add_posts "$port" big
    read -r trig rate < <(digest_run "$port")
    echo "  1,000,000: trigger ${trig} ms, dispatch ${rate} msg/s"
    result[$backend,big_trigger]=$trig; result[$backend,big_rate]=$rate
    result[$backend,big_hwm]=$(( $(hwm_kb "$pid") / 1024 ))
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    drop_db "$backend" "$name"
  fi

  # The dashboard: the overview and a reader search, signed in, over a list
  # that grew for two years (confirmations spread, every 20th reader gone).
  name="tidings_bench_dash_$$_$backend"
  url=$(db_url "$backend" "$name")
  env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" migrate
  "$root/bench/seed.sh" "$url" orthopedic "$N_DASH" spread
  port=$(free_port); pid=$(serve "$url" "$port"); pids+=("$pid")
  wait_healthy "$port"
  read -r op50 op99 orps sp50 sp99 srps < <("$root/bench/dashboard.sh" "$bin" "$url" "$port" "$DASH_SECS")
  result[$backend,dash_overview]="p50 $op50, p99 $op99 ($orps req/s)"
  result[$backend,dash_search]="p50 $sp50, p99 $sp99 ($srps req/s)"
  echo "  dashboard, $N_DASH readers: overview ${result[$backend,dash_overview]}; search ${result[$backend,dash_search]}"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  # The author's export of those readers, and an import of new ones.
  read -r secs mb < <(timed_peak env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" subscribers export)
  result[$backend,export]="$secs s, peak RSS $mb MB"
  echo "  export of $N_DASH readers: ${result[$backend,export]}"
  drop_db "$backend" "$name"
  name="tidings_bench_import_$$_$backend"
  url=$(db_url "$backend" "$name")
  env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" migrate
  awk -v n="$N_IMPORT" 'BEGIN {print "email,name,attributes"; for (i = 1; i <= n; i++) printf "import%d@bench.example,Reader %d,{}\n", i, i}' > "$work/import.csv"
  read -r secs mb < <(timed_peak env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=warn "$bin" subscribers import --list orthopedic "$work/import.csv")
  result[$backend,import]="$secs s, peak RSS $mb MB"
  echo "  import of $N_IMPORT rows: ${result[$backend,import]}"
  drop_db "$backend" "$name"

  # Signups: 64 connections of distinct JSON signups while confirmations
  # drain: one list, then both lists with a name (more rows per signup).
  for shape in one both; do
    name="tidings_bench_signup_$$_${backend}_$shape"
    url=$(db_url "$backend" "$name")
    port=$(free_port); pid=$(serve "$url" "$port" TIDINGS_SIGNUP_RATE_PER_MINUTE=0 TIDINGS_SECRET_KEY="$secret"); pids+=("$pid")
    wait_healthy "$port"
    # Every request carries its own fill-time token, old enough, as a real
    # client's would (a token serves one signup).
    /usr/bin/python3 "$root/bench/form_tokens.py" "$secret" $((WRK_SECS * 20000)) > "$work/tokens.txt"
    shape_args=(orthopedic)
    [ "$shape" = both ] && shape_args=(orthopedic,social-media name)
    wrk -t 2 -c 64 -d "${WRK_SECS}s" --latency -s "$root/bench/signup.lua" "http://127.0.0.1:$port" -- "$work/tokens.txt" 2 "${shape_args[@]}" > "$work/wrk.txt"
    key=$([ "$shape" = both ] && echo both_ || true)
    result[$backend,${key}rps]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/wrk.txt")
    result[$backend,${key}p50]=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
    result[$backend,${key}p99]=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
    errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {for (i = 3; i <= NF; i += 2) {gsub(",", "", $(i + 1)); n += $(i + 1)}} END {print n + 0}' "$work/wrk.txt")
    result[$backend,${key}errors]=$errors
    echo "  signups ($shape): ${result[$backend,${key}rps]} req/s, p50 ${result[$backend,${key}p50]}, p99 ${result[$backend,${key}p99]}, errors $errors"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    [ "$shape" = one ] && drop_db "$backend" "$name"
  done

  # Signup timing per address state, with the answer floor and without.
  for floor in default 0; do
    tname="tidings_bench_timing_$$_${backend}_$floor"
    turl=$(db_url "$backend" "$tname")
    env TIDINGS_DATABASE_URL="$turl" TIDINGS_LOG=warn "$bin" migrate
    "$root/bench/seed.sh" "$turl" orthopedic "$TIMING_ROUNDS"
    extra=(TIDINGS_SIGNUP_RATE_PER_MINUTE=0 TIDINGS_SECRET_KEY="$secret")
    [ "$floor" = 0 ] && extra+=(TIDINGS_SIGNUP_ANSWER_FLOOR_MS=0)
    port=$(free_port); pid=$(serve "$turl" "$port" "${extra[@]}"); pids+=("$pid")
    wait_healthy "$port"
    timing=$(/usr/bin/python3 "$root/bench/signup_timing.py" "$port" "$secret" "$TIMING_ROUNDS")
    spread=$(echo "$timing" | tr ' ' '\n' | awk -F= 'NR == 1 || $2 < lo {lo = $2} NR == 1 || $2 > hi {hi = $2} END {printf "%.0f", (hi / lo - 1) * 100}')
    result[$backend,timing_$floor]="$(echo "$timing" | sed 's/ /, /g') µs (spread $spread %)"
    echo "  signup medians by state, floor $floor: ${result[$backend,timing_$floor]}"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    drop_db "$backend" "$tname"
  done

  # Footprint: start to a 200 on /health with an existing database, idle RSS.
  starts=()
  for _ in $(seq 1 "$STARTS"); do
    port=$(free_port)
    t0=$(now_ns); pid=$(serve "$url" "$port"); pids+=("$pid"); wait_healthy "$port"; t1=$(now_ns)
    starts+=("$(( (t1 - t0) / 1000000 ))")
    sleep 0.2
    result[$backend,idle]=$(( $(rss_kb "$pid") / 1024 ))
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  done
  result[$backend,start]=$(printf '%s\n' "${starts[@]}" | median)
  drop_db "$backend" "$name"
done

size_mb=$(awk -v b="$(stat -c %s "$bin")" 'BEGIN {printf "%.1f", b / 1048576}')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)"
mode=$([ "$quick" = 1 ] && echo quick || echo full)

table=$(
  echo "| measure | $(for b in $backends; do printf '%s | ' "$b"; done)"
  echo "|---|$(for _ in $backends; do printf -- '---|'; done)"
  row() { local label="$1" key="$2" unit="$3"; printf '| %s | ' "$label"; for b in $backends; do printf '%s%s | ' "${result[$b,$key]:-n/a}" "$unit"; done; echo; }
  ratio() { printf '| %s | ' "$1"; for b in $backends; do awk -v a="${result[$b,$2]:-0}" -v r="$3" 'BEGIN {printf "%.2f | ", a / r}'; done; echo; }
  row "dispatch at the default settings (16 connections), $N recipients, median of $RUNS, wall clock (msg/s)" default_wall ""
  ratio "the same, ratio to smtp-source -s 16 ($ref msg/s)" default_wall "$ref"
  row "the same, by the digest's timestamps (msg/s)" default_rate ""
  row "the same, runs (msg/s)" default_rates ""
  row "dispatch at concurrency $concurrency, $N recipients, median of $RUNS, wall clock (msg/s)" wall ""
  ratio "the same, ratio to smtp-source -s 16 ($ref msg/s)" wall "$ref"
  row "dispatch at concurrency $concurrency, by the digest's timestamps (msg/s)" rate ""
  row "dispatch runs (msg/s)" rates ""
  ratio "ratio to smtp-source (timestamps)" rate "$ref"
  row "dispatch with DKIM rsa-sha256 (2048 bits), $N_DKIM recipients (msg/s)" dkim_rsa ""
  ratio "the same, ratio to one core's RSA-2048 signing ($rsa_ref signs/s, openssl speed)" dkim_rsa "$rsa_ref"
  row "dispatch with DKIM ed25519-sha256, $N_DKIM recipients (msg/s)" dkim_ed25519 ""
  ratio "the same, ratio to smtp-source" dkim_ed25519 "$ref"
  row "dispatch with both keys (two signatures a copy), $N_DKIM recipients (msg/s)" dkim_both ""
  row "one worker (16 connections), $N recipients, wall clock (msg/s)" workers_1 ""
  row "two workers (16 connections each), wall clock (msg/s)" workers_2 ""
  printf '| two workers / one worker | '; for b in $backends; do awk -v a="${result[$b,workers_2]:-0}" -v r="${result[$b,workers_1]:-1}" 'BEGIN {if (a) printf "%.2f | ", a / r; else printf "n/a | "}'; done; echo
  row "peak RSS with DKIM rsa-sha256 (MB)" dkim_hwm ""
  row "trigger, $N recipients (ms)" trigger ""
  row "peak RSS, $N recipients (MB)" hwm ""
  if ((N_BIG)); then
    row "trigger, $N_BIG recipients (ms)" big_trigger ""
    row "dispatch, $N_BIG recipients (msg/s)" big_rate ""
    row "peak RSS, $N_BIG recipients (MB)" big_hwm ""
  fi
  row "signups, 64 connections, ${WRK_SECS}s (req/s)" rps ""
  row "signup latency p50" p50 ""
  row "signup latency p99" p99 ""
  row "signup errors (non-2xx + socket)" errors ""
  row "signups to both lists with a name, 64 connections, ${WRK_SECS}s (req/s)" both_rps ""
  row "the same, latency p50" both_p50 ""
  row "the same, latency p99" both_p99 ""
  row "the same, errors (non-2xx + socket)" both_errors ""
  row "signup answer medians by address state, $TIMING_ROUNDS each, interleaved (floor on, default)" timing_default ""
  row "the same with signup_answer_floor_ms = 0" timing_0 ""
  row "dashboard overview, $N_DASH readers, 4 connections, ${DASH_SECS}s" dash_overview ""
  row "dashboard reader search (substring), $N_DASH readers, 4 connections, ${DASH_SECS}s" dash_search ""
  row "export of $N_DASH readers (\`subscribers export\`)" export ""
  row "import of $N_IMPORT new readers (\`subscribers import\`, listmonk CSV)" import ""
  row "start to healthy, median of $STARTS (ms)" start ""
  row "idle RSS (MB)" idle ""
  echo "| release binary | $(for _ in $backends; do printf '%s MB | ' "$size_mb"; done)"
)
echo
echo "$table"

{
  echo
  echo "## $(date -u +%Y-%m-%d) — $mode run, commit $commit"
  echo
  echo "Machine: $machine. Method: \`bench/run.sh$([ "$quick" = 1 ] && echo ' --quick')\`; digest of 5 posts (~5 KB text + HTML, personalised unsubscribe link) to confirmed readers seeded straight into the database, sent to postfix's \`smtp-sink\` on loopback at concurrency $concurrency and at the default 16; PostgreSQL over loopback without TLS (\`sslmode=disable\`, as for a database on the same host); rate = messages sent / (the digest's \`finished_at\` − \`created_at\`, i.e. from the trigger's start to the last result recorded), and by wall clock from sending the trigger request to the first status poll that reads \`sent\` (polled every 100 ms); reference = \`smtp-source -d -s 16 -m $REF_MSGS -l 5000\` into the same sink, same run (runs: ${ref_rates[*]} msg/s). Peak RSS is the serving process's VmHWM. Signups: \`wrk -t2 -c64 -d${WRK_SECS}s\` with \`bench/signup.lua\` (distinct JSON signups, each with its own valid fill-time token from \`bench/form_tokens.py\`), signup rate limit off, confirmations draining to the sink. Tidings runs at its default log level (\`info\`: a line per signup), its log going to a file. DKIM rows: the same digest to $N_DKIM readers with every copy signed by a key from \`tidings dkim keygen\` (one run each). Signup timing: \`bench/signup_timing.py\`, $TIMING_ROUNDS rounds over one keep-alive connection, each round one signup of a new, a pending, a confirmed and a blocked-domain address in random order; medians per state, spread = slowest median / fastest − 1."
  echo
  echo "$table"
} >> "$root/BENCHMARKS.md"
echo "appended to BENCHMARKS.md"
