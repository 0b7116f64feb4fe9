-- Substring search of readers' addresses for the dashboard: a trigram
-- index (pg_trgm, a trusted extension a database owner may create). Where
-- the role may not create it, search still works, by reading the table.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX subscribers_email_trgm ON subscribers USING gin (email gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'reader search without a trigram index: %', SQLERRM;
END
$$;
