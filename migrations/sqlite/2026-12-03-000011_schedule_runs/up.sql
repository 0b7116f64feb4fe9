-- Each scheduled slot of a list, claimed once by whichever process comes
-- first (the primary key), with what came of it.
CREATE TABLE schedule_runs (
    list_id BIGINT NOT NULL REFERENCES lists (id),
    slot TIMESTAMP NOT NULL,
    outcome TEXT,
    digest_id BIGINT,
    started_at TIMESTAMP NOT NULL,
    PRIMARY KEY (list_id, slot)
);
