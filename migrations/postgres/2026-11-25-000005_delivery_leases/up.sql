-- A claim leases its deliveries in a column of their own that no index
-- holds, on pages with room to spare: PostgreSQL then writes each lease as a
-- heap-only tuple, without a new entry in every index of the table (the
-- lease used to move `next_attempt_at`, an indexed column). `next_attempt_at`
-- now says only when a retry is due.
ALTER TABLE deliveries ADD COLUMN leased_until TIMESTAMP;
ALTER TABLE deliveries SET (fillfactor = 50);
