-- Triggering a digest writes a delivery row per reader in one statement, and
-- each row paid for an index and a key check it no longer needs (a million
-- readers, measured on a 2-core machine: 19.6 s to trigger; without these
-- two, under 10 s):
-- * deliveries_by_digest served the per-digest counts, which the digest row
--   now keeps itself (deliveries_retrying covers what is still looked up);
-- * the key check against the subscription took a share lock on every
--   subscription row it had just read in the same statement. Subscriptions
--   are never deleted; a delivery whose subscription is gone all the same is
--   skipped when claimed.
DROP INDEX deliveries_by_digest;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_subscription_id_fkey;
