ALTER TABLE deliveries
    ADD CONSTRAINT deliveries_digest_id_fkey FOREIGN KEY (digest_id) REFERENCES digests (id) ON DELETE CASCADE;
