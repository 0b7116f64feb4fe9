ALTER TABLE deliveries ADD CONSTRAINT deliveries_subscription_id_fkey
    FOREIGN KEY (subscription_id) REFERENCES subscriptions (id) ON DELETE CASCADE;
CREATE INDEX deliveries_by_digest ON deliveries (digest_id, status);
