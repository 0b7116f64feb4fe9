-- The suppression list: addresses never mailed again, with why. Keyed by a
-- SHA-256 of the lowercased address, so that erasing a reader can drop the
-- address and keep the hash: an erased complainer is still never mailed.
CREATE TABLE suppressions (
    address_hash TEXT PRIMARY KEY NOT NULL,
    email TEXT,
    reason TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'soft_bounces', 'complaint', 'manual')),
    source TEXT NOT NULL,
    detail TEXT,
    created_at TIMESTAMP NOT NULL
);

-- Every bounce or complaint report applied, once: report_key names the
-- report and the recipient within it, so importing a report twice is a no-op.
CREATE TABLE bounce_events (
    id BIGSERIAL PRIMARY KEY,
    report_key TEXT NOT NULL UNIQUE,
    address_hash TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint', 'policy')),
    source TEXT NOT NULL,
    detail TEXT,
    at TIMESTAMP NOT NULL
);
CREATE INDEX bounce_events_by_address ON bounce_events (address_hash, kind, at);

-- Confirmed readers a digest left out because their address is suppressed
-- (a table of its own: the digest row is as wide as diesel's default allows).
CREATE TABLE digest_suppressed (
    digest_id BIGINT PRIMARY KEY NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    readers BIGINT NOT NULL
);
