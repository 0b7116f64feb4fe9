-- The processes sending from this database, each seen every second while
-- it runs: a send-rate cap is split evenly between the live ones.
CREATE TABLE senders (
    id TEXT PRIMARY KEY,
    seen_at TIMESTAMP NOT NULL
);
