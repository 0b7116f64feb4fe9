CREATE TABLE posts (
    id BIGSERIAL PRIMARY KEY,
    -- the URL identifies a post: posting it again updates the row
    url TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    published_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE post_lists (
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES lists (id),
    PRIMARY KEY (post_id, list_id)
);
CREATE INDEX post_lists_by_list ON post_lists (list_id, post_id);

CREATE TABLE digests (
    id BIGSERIAL PRIMARY KEY,
    list_id BIGINT NOT NULL REFERENCES lists (id),
    subject TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    recipients BIGINT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX digests_by_list ON digests (list_id, id);

CREATE TABLE digest_posts (
    digest_id BIGINT NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    post_id BIGINT NOT NULL REFERENCES posts (id),
    PRIMARY KEY (digest_id, post_id)
);
CREATE INDEX digest_posts_by_post ON digest_posts (post_id);

-- One row per recipient of a digest, fixed when the digest is triggered.
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    digest_id BIGINT NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- skipped: the reader left (or bounced) before their message went out
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- when the row is next due; a claim pushes it forward as a lease
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMP
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_digest ON deliveries (digest_id, status);
