DROP TABLE deliveries;
DROP TABLE digest_posts;
DROP TABLE digests;
DROP TABLE post_lists;
DROP TABLE posts;
