#!/usr/bin/env bash
# Seeds N confirmed readers of a list straight into the database (a few
# seconds for a million), for the dispatch benchmark.
# usage: bench/seed.sh DATABASE_URL LIST N
set -euo pipefail
url="$1" list="$2" n="$3"
case "$url" in
  sqlite://*)
    sqlite3 "${url#sqlite://}" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $n)
INSERT INTO subscribers (uuid, email, name, created_at)
SELECT lower(hex(randomblob(16))), 'reader' || i || '@bench.example',
       CASE WHEN i % 2 = 0 THEN 'Reader ' || i END, '2026-01-01 00:00:00'
FROM seq;
INSERT INTO subscriptions (subscriber_id, list_id, status, unsubscribe_id, created_at, updated_at, confirmed_at)
SELECT s.id, l.id, 'confirmed', substr(lower(hex(randomblob(11))), 1, 22),
       '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'
FROM subscribers s, lists l
WHERE l.slug = '$list' AND s.email LIKE '%@bench.example';
COMMIT;
ANALYZE;
SQL
    ;;
  postgres://*|postgresql://*)
    psql -q "$url" <<SQL
BEGIN;
INSERT INTO subscribers (uuid, email, name, created_at)
SELECT md5(random()::text), 'reader' || i || '@bench.example',
       CASE WHEN i % 2 = 0 THEN 'Reader ' || i END, '2026-01-01 00:00:00'
FROM generate_series(1, $n) AS i;
INSERT INTO subscriptions (subscriber_id, list_id, status, unsubscribe_id, created_at, updated_at, confirmed_at)
SELECT s.id, l.id, 'confirmed', substr(md5(random()::text), 1, 22),
       '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'
FROM subscribers s, lists l
WHERE l.slug = '$list' AND s.email LIKE '%@bench.example';
COMMIT;
ANALYZE;
SQL
    ;;
  *) echo "unknown database URL: $url" >&2; exit 2 ;;
esac
