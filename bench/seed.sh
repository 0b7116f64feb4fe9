#!/usr/bin/env bash
# Seeds N confirmed readers of a list straight into the database (a few
# seconds for a million), for the dispatch benchmark. With `spread`, their
# confirmations are spread over the last two years and every 20th reader
# has left since, as a list that grew (for the dashboard's growth charts).
# usage: bench/seed.sh DATABASE_URL LIST N [spread]
set -euo pipefail
url="$1" list="$2" n="$3" spread="${4:-}"
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
SQL
    if [ -n "$spread" ]; then
      sqlite3 "${url#sqlite://}" >/dev/null <<SQL
UPDATE subscriptions SET confirmed_at = datetime('now', '-' || (id % 730) || ' days', '-' || (id % 86400) || ' seconds');
UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = datetime(confirmed_at, '+' || (id % 300) || ' days') WHERE id % 20 = 0;
SQL
    fi
    sqlite3 "${url#sqlite://}" 'ANALYZE;' >/dev/null
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
SQL
    if [ -n "$spread" ]; then
      psql -q "$url" <<SQL
UPDATE subscriptions SET confirmed_at = now() - (id % 730) * interval '1 day' - (id % 86400) * interval '1 second';
UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = confirmed_at + (id % 300) * interval '1 day' WHERE id % 20 = 0;
SQL
    fi
    psql -q "$url" -c 'VACUUM ANALYZE;' >/dev/null
    ;;
  *) echo "unknown database URL: $url" >&2; exit 2 ;;
esac
