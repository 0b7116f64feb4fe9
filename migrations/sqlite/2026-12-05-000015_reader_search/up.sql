-- Substring search of readers' addresses for the dashboard: a trigram
-- index (FTS5) over `subscribers.email`, kept in step by triggers.
CREATE VIRTUAL TABLE subscriber_search USING fts5(email, content = 'subscribers', content_rowid = 'id', tokenize = 'trigram');
INSERT INTO subscriber_search (subscriber_search) VALUES ('rebuild');
CREATE TRIGGER subscribers_search_insert AFTER INSERT ON subscribers BEGIN
    INSERT INTO subscriber_search (rowid, email) VALUES (NEW.id, NEW.email);
END;
CREATE TRIGGER subscribers_search_delete AFTER DELETE ON subscribers BEGIN
    INSERT INTO subscriber_search (subscriber_search, rowid, email) VALUES ('delete', OLD.id, OLD.email);
END;
CREATE TRIGGER subscribers_search_update AFTER UPDATE OF email ON subscribers BEGIN
    INSERT INTO subscriber_search (subscriber_search, rowid, email) VALUES ('delete', OLD.id, OLD.email);
    INSERT INTO subscriber_search (rowid, email) VALUES (NEW.id, NEW.email);
END;
