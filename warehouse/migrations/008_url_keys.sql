-- Per-batch lookups by URL read only the row groups that can hold the batch's URLs, as lookups by article
-- id do since migration 007. Sorting by `url` itself prunes nothing: DuckDB keeps the first 8 bytes of a
-- string's min/max and every URL starts with "https://". So the URL-keyed tables that grow with the
-- warehouse get `url_key`, the first 16 hex digits of md5(url) (`substr(md5(url), 1, 16)`, computed in SQL
-- by every load, never in Python), are sorted by it in row groups of 2048 rows, and their lookups join on
-- `url_key` and `url` (the url check makes a 64-bit prefix collision harmless). url_retries is not
-- keyed this way: it holds failing URLs only, not every URL ever fetched.
-- Rewrites both tables once (pages holds the raw bodies: on a large warehouse this takes a while).
-- The backfills come last: DuckLake 1.5.5 refuses an ALTER on a table with inlined rows written earlier
-- in the same transaction (a small lake keeps its rows inlined in the catalog).
ALTER TABLE pages ADD COLUMN url_key VARCHAR;
ALTER TABLE pages SET SORTED BY (url_key);
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'pages');
ALTER TABLE article_urls ADD COLUMN url_key VARCHAR;
ALTER TABLE article_urls SET SORTED BY (url_key);
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'article_urls');
UPDATE pages SET url_key = substr(md5(url), 1, 16);
UPDATE article_urls SET url_key = substr(md5(url), 1, 16);
