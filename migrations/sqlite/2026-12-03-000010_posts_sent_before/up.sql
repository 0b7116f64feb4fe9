-- A feed's first pull stores its old posts as already sent, so the next
-- digest does not mail the blog's whole history.
ALTER TABLE post_lists ADD COLUMN sent_before BOOLEAN NOT NULL DEFAULT FALSE;
