DROP TABLE api_keys;
DELETE FROM consent_events WHERE kind = 'name';
DROP INDEX outbox_welcome_once;
DELETE FROM outbox WHERE kind IN ('welcome', 'manage');
ALTER TABLE outbox DROP COLUMN list_id;
