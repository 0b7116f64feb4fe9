DROP TRIGGER subscribers_search_update;
DROP TRIGGER subscribers_search_delete;
DROP TRIGGER subscribers_search_insert;
DROP TABLE subscriber_search;
