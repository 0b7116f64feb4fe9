DROP INDEX IF EXISTS subscribers_email_trgm;
