-- Digests can be paused (by the author or their own circuit breaker) and
-- cancelled; a delivery can bounce (the recipient's fault) or be cancelled;
-- every failure keeps its class, SMTP stage and reply code. New columns
-- with constant defaults: no table rewrite.
ALTER TABLE digests DROP CONSTRAINT digests_status_check;
ALTER TABLE digests ADD CONSTRAINT digests_status_check
    CHECK (status IN ('queued', 'sending', 'paused', 'sent', 'failed', 'cancelled'));
-- failed_count: failed for a reason that is not the recipient's (message +
-- temporary); rejected_count: of those, refused for the message or sender.
ALTER TABLE digests ADD COLUMN rejected_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE digests ADD COLUMN bounced_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE digests ADD COLUMN cancelled_count BIGINT NOT NULL DEFAULT 0;
-- finished sends in a row that failed not for the recipient's fault
ALTER TABLE digests ADD COLUMN failure_streak BIGINT NOT NULL DEFAULT 0;
ALTER TABLE digests ADD COLUMN paused_reason TEXT;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'bounced', 'skipped', 'cancelled'));
ALTER TABLE deliveries ADD COLUMN failure_class TEXT
    CHECK (failure_class IN ('recipient', 'message', 'temporary'));
ALTER TABLE deliveries ADD COLUMN failure_stage TEXT;
ALTER TABLE deliveries ADD COLUMN failure_code TEXT;
