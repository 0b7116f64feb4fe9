-- A welcome email and a "manage your subscriptions" email go through the
-- outbox like confirmations; a welcome names its list, and is queued at most
-- once per reader and list.
ALTER TABLE outbox ADD COLUMN list_id BIGINT REFERENCES lists (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX outbox_welcome_once ON outbox (subscriber_id, list_id) WHERE kind = 'welcome';

-- The consent trail also records a name changed from the preference page.
ALTER TABLE consent_events DROP CONSTRAINT consent_events_kind_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_kind_check
    CHECK (kind IN ('signup', 'confirm', 'unsubscribe', 'name'));

-- Keys for server-side signup clients: only a SHA-256 of the key is kept
-- (keys are 256 random bits, so a slow hash adds nothing).
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
