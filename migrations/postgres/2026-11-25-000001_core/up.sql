-- Times are UTC, written by the application.
CREATE TABLE lists (
    id BIGSERIAL PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE subscribers (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    name TEXT,
    created_at TIMESTAMP NOT NULL,
    -- set after a permanent delivery failure; cleared when the reader confirms again
    suppressed_at TIMESTAMP
);

CREATE TABLE subscriptions (
    id BIGSERIAL PRIMARY KEY,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES lists (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    unsubscribe_id TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    unsubscribed_at TIMESTAMP,
    UNIQUE (subscriber_id, list_id)
);
CREATE INDEX subscriptions_by_list_status ON subscriptions (list_id, status);

-- The consent trail a GDPR auditor asks for: every signup, confirmation and
-- withdrawal, when, from where, how, under which consent text. Never updated.
CREATE TABLE consent_events (
    id BIGSERIAL PRIMARY KEY,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('signup', 'confirm', 'unsubscribe')),
    at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT,
    source TEXT NOT NULL,
    consent_version TEXT NOT NULL
);
CREATE INDEX consent_events_by_subscription ON consent_events (subscription_id, at);

CREATE TABLE confirmation_tokens (
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    -- the name asked for at signup, applied only once the mailbox owner confirms
    name TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX confirmation_tokens_by_subscriber ON confirmation_tokens (subscriber_id, created_at);

CREATE TABLE confirmation_token_lists (
    token_id BIGINT NOT NULL REFERENCES confirmation_tokens (id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES lists (id),
    PRIMARY KEY (token_id, list_id)
);

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    token_id BIGINT REFERENCES confirmation_tokens (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- when the row is next due; a claim pushes it forward as a lease
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_subscriber ON outbox (subscriber_id, kind, created_at);

CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
