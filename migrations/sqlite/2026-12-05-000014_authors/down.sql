DROP INDEX subscribers_suppressed;
DROP INDEX subscriptions_by_list_unsubscribed;
DROP INDEX subscriptions_by_list_confirmed;
DROP TABLE author_sessions;
DROP TABLE authors;
