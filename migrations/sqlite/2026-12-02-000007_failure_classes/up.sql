-- Digests can be paused (by the author or their own circuit breaker) and
-- cancelled; a delivery can bounce (the recipient's fault) or be cancelled;
-- every failure keeps its class, SMTP stage and reply code.
--
-- SQLite cannot change a CHECK constraint in place, so the three tables of a
-- digest are rebuilt (https://sqlite.org/lang_altertable.html). Children go
-- first, so that dropping `digests` cascades into nothing; renaming the new
-- tables rewrites their foreign keys to the final names.
CREATE TABLE digests_new (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists (id),
    subject TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'paused', 'sent', 'failed', 'cancelled')),
    recipients BIGINT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    sent_count BIGINT NOT NULL DEFAULT 0,
    -- failed for a reason that is not the recipient's (message + temporary)
    failed_count BIGINT NOT NULL DEFAULT 0,
    skipped_count BIGINT NOT NULL DEFAULT 0,
    -- of failed_count: refused for the message or the sender (5xx)
    rejected_count BIGINT NOT NULL DEFAULT 0,
    bounced_count BIGINT NOT NULL DEFAULT 0,
    cancelled_count BIGINT NOT NULL DEFAULT 0,
    -- finished sends in a row that failed not for the recipient's fault
    failure_streak BIGINT NOT NULL DEFAULT 0,
    paused_reason TEXT
);
INSERT INTO digests_new (id, list_id, subject, status, recipients, idempotency_key, created_at, finished_at,
                         sent_count, failed_count, skipped_count)
    SELECT id, list_id, subject, status, recipients, idempotency_key, created_at, finished_at,
           sent_count, failed_count, skipped_count
    FROM digests;

CREATE TABLE digest_posts_new (
    digest_id INTEGER NOT NULL REFERENCES digests_new (id) ON DELETE CASCADE,
    post_id INTEGER NOT NULL REFERENCES posts (id),
    PRIMARY KEY (digest_id, post_id)
);
INSERT INTO digest_posts_new SELECT digest_id, post_id FROM digest_posts;

CREATE TABLE deliveries_new (
    id INTEGER PRIMARY KEY,
    digest_id INTEGER NOT NULL REFERENCES digests_new (id) ON DELETE CASCADE,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'bounced', 'skipped', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMP,
    leased_until TIMESTAMP,
    failure_class TEXT CHECK (failure_class IN ('recipient', 'message', 'temporary')),
    failure_stage TEXT,
    failure_code TEXT
);
INSERT INTO deliveries_new (id, digest_id, subscription_id, status, attempts, next_attempt_at, last_error, sent_at,
                            leased_until)
    SELECT id, digest_id, subscription_id, status, attempts, next_attempt_at, last_error, sent_at, leased_until
    FROM deliveries;

DROP TABLE deliveries;
DROP TABLE digest_posts;
DROP TABLE digests;
ALTER TABLE digests_new RENAME TO digests;
ALTER TABLE digest_posts_new RENAME TO digest_posts;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX digests_by_list ON digests (list_id, id);
CREATE INDEX digest_posts_by_post ON digest_posts (post_id);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_retrying ON deliveries (digest_id, status, attempts) WHERE status = 'pending' AND attempts > 0;
