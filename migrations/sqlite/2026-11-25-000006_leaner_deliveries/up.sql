-- deliveries_by_digest served the per-digest counts, which the digest row
-- now keeps itself (deliveries_retrying covers what is still looked up);
-- dropping it spares every delivery write an index entry.
DROP INDEX deliveries_by_digest;
