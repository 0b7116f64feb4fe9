ALTER TABLE post_lists DROP COLUMN sent_before;
