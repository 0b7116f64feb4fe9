# Helpers shared by bench/run.sh and bench/ab.sh. Expects: work (a scratch
# directory), pg_admin, sink_port, admin, concurrency, and bin (the binary
# `serve` starts).

now_ns() { date +%s%N; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# postfix's smtp-sink on a free loopback port: sets sink_port, adds to pids.
start_sink() {
  sink_port=$(free_port)
  smtp-sink -u "$(id -un)" "127.0.0.1:$sink_port" 2048 &
  pids+=($!)
  sleep 0.3
}

db_url() { # backend name -> fresh database URL
  case "$1" in
    sqlite) echo "sqlite://$work/$2.db" ;;
    postgres)
      psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $2" -c "CREATE DATABASE $2" >/dev/null
      echo "${pg_admin%/*}/$2?sslmode=disable" ;;
  esac
}
drop_db() { [ "$1" = postgres ] && psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" >/dev/null || true; }

launch() { # url port command extra-env... ; prints pid
  local url="$1" port="$2" command="$3"; shift 3
  env TIDINGS_DATABASE_URL="$url" TIDINGS_LISTEN="127.0.0.1:$port" TIDINGS_BASE_URL="https://news.example.org" \
    TIDINGS_MAIL_TRANSPORT=smtp TIDINGS_SMTP_URL="smtp://127.0.0.1:$sink_port" TIDINGS_ADMIN_TOKEN="$admin" \
    TIDINGS_SMTP_CONCURRENCY="$concurrency" TIDINGS_DATABASE_POOL_SIZE=16 "$@" \
    "$bin" $command >>"$work/serve.log" 2>&1 &
  echo $!
}
serve() { # url port extra-env... ; prints pid
  local url="$1" port="$2"; shift 2
  launch "$url" "$port" serve "$@"
}
timed_peak() { # command... -> "seconds peak_MB": wall clock and the command's peak RSS
  /usr/bin/python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(f"{time.monotonic() - t:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")
PY
}
wait_healthy() { for _ in $(seq 1 2000); do curl -fs "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.005; done; return 1; }

add_posts() { # port run
  local summary
  summary=$(printf 'Orthopedic advice for everyday life: what the evidence says about rest, movement, load and recovery, explained for patients. %.0s' 1 2 3 4 5)
  for i in 1 2 3 4 5; do
    curl -fs -o /dev/null -H "Authorization: Bearer $admin" -H 'content-type: application/json' "http://127.0.0.1:$1/admin/posts" \
      -d "{\"title\":\"Run $2, post $i: knees, hips and the evidence\",\"url\":\"https://blog.example.org/$2/$i\",\"summary\":\"$summary\",\"published_at\":\"2026-11-2${i}T10:00:00Z\",\"lists\":[\"orthopedic\"]}"
  done
}

digest_run() { # port -> "trigger_ms rate wall_rate"
  local port=$1 t0 t1 t2 id status
  t0=$(now_ns)
  id=$(curl -fs -H "Authorization: Bearer $admin" -H 'content-type: application/json' "http://127.0.0.1:$port/admin/digests" \
    -d '{"list":"orthopedic"}' | sed 's/.*"id":\([0-9]*\).*/\1/')
  t1=$(now_ns)
  # Polls every 100 ms (the status reads the digest's counters, not its
  # deliveries). Two rates: by the digest's own timestamps (trigger start to
  # the last result recorded), and by the wall clock a user watches, from
  # sending the trigger request to the first poll that reads `sent`.
  while :; do
    status=$(curl -fs -H "Authorization: Bearer $admin" "http://127.0.0.1:$port/admin/digests/$id")
    case "$status" in *'"status":"sent"'*|*'"status":"failed"'*|*'"status":"paused"'*) break ;; esac
    sleep 0.1
  done
  t2=$(now_ns)
  local rate
  rate=$(/usr/bin/python3 -c '
import json, re, sys
from datetime import datetime
s = json.loads(sys.argv[1])
micros = lambda v: re.sub(r"(\.\d{1,6})\d*", r"\1", v.replace("Z", "+00:00"))
t = lambda k: datetime.fromisoformat(micros(s[k])).timestamp()
print(round(s["sent"] / max(t("finished_at") - t("created_at"), 0.001)), round(s["sent"] / (int(sys.argv[2]) / 1e9)))' "$status" $((t2 - t0)))
  awk -v a=$((t1 - t0)) -v r="$rate" 'BEGIN {printf "%.0f %s\n", a / 1e6, r}'
}
