DROP TABLE api_keys;
DELETE FROM consent_events WHERE kind = 'name';
ALTER TABLE consent_events DROP CONSTRAINT consent_events_kind_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_kind_check
    CHECK (kind IN ('signup', 'confirm', 'unsubscribe'));
DROP INDEX outbox_welcome_once;
DELETE FROM outbox WHERE kind IN ('welcome', 'manage');
ALTER TABLE outbox DROP COLUMN list_id;
