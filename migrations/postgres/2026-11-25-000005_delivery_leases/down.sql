ALTER TABLE deliveries RESET (fillfactor);
ALTER TABLE deliveries DROP COLUMN leased_until;
