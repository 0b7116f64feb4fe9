ALTER TABLE deliveries DROP COLUMN leased_until;
