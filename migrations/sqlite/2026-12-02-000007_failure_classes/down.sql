-- Paused and cancelled digests, bounced and cancelled deliveries have no
-- place in the older schema: they are read back as failed.
CREATE TABLE digests_old (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists (id),
    subject TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    recipients BIGINT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    sent_count BIGINT NOT NULL DEFAULT 0,
    failed_count BIGINT NOT NULL DEFAULT 0,
    skipped_count BIGINT NOT NULL DEFAULT 0
);
INSERT INTO digests_old
    SELECT id, list_id, subject,
           CASE WHEN status IN ('paused', 'cancelled') THEN 'failed' ELSE status END,
           recipients, idempotency_key, created_at, finished_at,
           sent_count, failed_count + bounced_count + cancelled_count, skipped_count
    FROM digests;
CREATE TABLE digest_posts_old (
    digest_id INTEGER NOT NULL REFERENCES digests_old (id) ON DELETE CASCADE,
    post_id INTEGER NOT NULL REFERENCES posts (id),
    PRIMARY KEY (digest_id, post_id)
);
INSERT INTO digest_posts_old SELECT digest_id, post_id FROM digest_posts;
CREATE TABLE deliveries_old (
    id INTEGER PRIMARY KEY,
    digest_id INTEGER NOT NULL REFERENCES digests_old (id) ON DELETE CASCADE,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMP,
    leased_until TIMESTAMP
);
INSERT INTO deliveries_old
    SELECT id, digest_id, subscription_id,
           CASE WHEN status IN ('bounced', 'cancelled') THEN 'failed' ELSE status END,
           attempts, next_attempt_at, last_error, sent_at, leased_until
    FROM deliveries;
DROP TABLE deliveries;
DROP TABLE digest_posts;
DROP TABLE digests;
ALTER TABLE digests_old RENAME TO digests;
ALTER TABLE digest_posts_old RENAME TO digest_posts;
ALTER TABLE deliveries_old RENAME TO deliveries;
CREATE INDEX digests_by_list ON digests (list_id, id);
CREATE INDEX digest_posts_by_post ON digest_posts (post_id);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_retrying ON deliveries (digest_id, status, attempts) WHERE status = 'pending' AND attempts > 0;
