DROP INDEX deliveries_retrying;
ALTER TABLE digests DROP COLUMN skipped_count;
ALTER TABLE digests DROP COLUMN failed_count;
ALTER TABLE digests DROP COLUMN sent_count;
