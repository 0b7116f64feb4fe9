-- The authors who sign in to the dashboard: Argon2id password hashes (PHC
-- strings), never the passwords.
CREATE TABLE authors (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- A signed-in browser: only the SHA-256 of the cookie's value is kept, so
-- a copy of the database signs nobody in. Each session has its own CSRF
-- token for the dashboard's forms.
CREATE TABLE author_sessions (
    id_hash TEXT PRIMARY KEY,
    author_id BIGINT NOT NULL REFERENCES authors (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX author_sessions_by_author ON author_sessions (author_id);

-- Growth per day: new confirmations and unsubscribes of a list, found by
-- range without reading every subscription.
CREATE INDEX subscriptions_by_list_confirmed ON subscriptions (list_id, confirmed_at);
CREATE INDEX subscriptions_by_list_unsubscribed ON subscriptions (list_id, unsubscribed_at);

-- The suppressed readers of each list, counted without reading the others.
CREATE INDEX subscribers_suppressed ON subscribers (suppressed_at) WHERE suppressed_at IS NOT NULL;
