-- A welcome email and a "manage your subscriptions" email go through the
-- outbox like confirmations; a welcome names its list, and is queued at most
-- once per reader and list.
ALTER TABLE outbox ADD COLUMN list_id INTEGER REFERENCES lists (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX outbox_welcome_once ON outbox (subscriber_id, list_id) WHERE kind = 'welcome';

-- The consent trail also records a name changed from the preference page.
CREATE TABLE consent_events_new (
    id INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('signup', 'confirm', 'unsubscribe', 'name')),
    at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT,
    source TEXT NOT NULL,
    consent_version TEXT NOT NULL
);
INSERT INTO consent_events_new SELECT id, subscription_id, kind, at, ip, user_agent, source, consent_version FROM consent_events;
DROP TABLE consent_events;
ALTER TABLE consent_events_new RENAME TO consent_events;
CREATE INDEX consent_events_by_subscription ON consent_events (subscription_id, at);

-- Keys for server-side signup clients: only a SHA-256 of the key is kept
-- (keys are 256 random bits, so a slow hash adds nothing).
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
