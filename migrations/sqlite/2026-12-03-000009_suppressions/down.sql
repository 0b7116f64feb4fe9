DROP TABLE digest_suppressed;
DROP TABLE bounce_events;
DROP TABLE suppressions;
