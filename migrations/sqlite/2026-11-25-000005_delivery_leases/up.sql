-- A claim leases its deliveries in a column of their own that no index
-- holds (the lease used to move `next_attempt_at`, an indexed column, which
-- on PostgreSQL meant a new entry in every index per claim). Kept the same
-- here so both backends share one claim. `next_attempt_at` now says only
-- when a retry is due.
ALTER TABLE deliveries ADD COLUMN leased_until TIMESTAMP;
