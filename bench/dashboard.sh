#!/usr/bin/env bash
# The dashboard under load: signs an author in (as a browser does: the
# sign-in form's cookie and token, then the session cookie) and measures
# the overview and a reader search with wrk, 4 connections.
# usage: bench/dashboard.sh BINARY DATABASE_URL PORT SECONDS
# prints: overview_p50 overview_p99 overview_rps search_p50 search_p99 search_rps
set -euo pipefail
bin="$1" url="$2" port="$3" secs="$4"
base="http://127.0.0.1:$port"
echo 'bench passphrase 0123' | env TIDINGS_DATABASE_URL="$url" TIDINGS_LOG=error "$bin" authors add bench@example.org >/dev/null 2>&1 || true
form=$(curl -fs -D - "$base/admin/login")
login_cookie=$(printf '%s' "$form" | sed -n 's/^[Ss]et-[Cc]ookie: \(tidings_login=[^;]*\).*/\1/p' | head -n1)
token=$(printf '%s' "$form" | sed -n 's/.*name="login_token" value="\([^"]*\)".*/\1/p' | head -n1)
session=$(curl -fs -D - -o /dev/null -H "Cookie: $login_cookie" "$base/admin/login" \
  --data-urlencode email=bench@example.org --data-urlencode 'password=bench passphrase 0123' --data-urlencode "login_token=$token" \
  | sed -n 's/^[Ss]et-[Cc]ookie: \(tidings_session=[^;]*\).*/\1/p' | head -n1)
[ -n "$session" ] || { echo "sign-in failed" >&2; exit 1; }
# The page must be the real one, not the sign-in redirect.
curl -fs -H "Cookie: $session" "$base/admin" | grep -q '<h1>Overview</h1>'
measure() { # path -> "p50 p99 rps"
  wrk -t 1 -c 4 -d "${secs}s" --latency -H "Cookie: $session" "$base$1" > "$work_file"
  awk '$1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2} /Requests\/sec/ {rps = $2} END {printf "%s %s %.0f", p50, p99, rps}' "$work_file"
}
work_file=$(mktemp)
trap 'rm -f "$work_file"' EXIT
echo "$(measure /admin) $(measure '/admin/ui/readers?q=der77777')"
