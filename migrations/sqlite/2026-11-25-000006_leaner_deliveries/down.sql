CREATE INDEX deliveries_by_digest ON deliveries (digest_id, status);
