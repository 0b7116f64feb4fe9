DROP TABLE secrets;
DROP TABLE outbox;
DROP TABLE confirmation_token_lists;
DROP TABLE confirmation_tokens;
DROP TABLE consent_events;
DROP TABLE subscriptions;
DROP TABLE subscribers;
DROP TABLE lists;
