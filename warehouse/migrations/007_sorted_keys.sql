-- Per-batch lookups by hash key (article id, LSH band key) read only the row groups that can hold the
-- batch's keys. DuckLake 1.5.5 has no indexes, and a random key spreads every unsorted file's min/max over
-- the whole key space, so each lookup read the table's whole key column. Sorted by key (DuckLake sorts on
-- INSERT, compaction and inlined-data flushing) in row groups of 2048 rows (the smallest DuckDB writes), each
-- row group covers a narrow key range; warehouse.db raises DuckDB's dynamic_or_filter_threshold so a join
-- with a batch's keys pushes them into the scan as an IN filter, checked against each row group's min/max.
-- A lookup of k keys then reads at most ~k row groups per file however large the table grows
-- (benchmarks/lookups.py). Files written before this migration keep their order until maintenance
-- rewrites them. Not the URL-keyed tables (pages, article_urls, url_retries): DuckDB keeps only the first
-- 8 bytes of a string's min/max, and URLs share their scheme and host, so sorting them prunes nothing.
ALTER TABLE articles SET SORTED BY (id);
ALTER TABLE article_versions SET SORTED BY (article_id);
ALTER TABLE article_fingerprints SET SORTED BY (article_id);
ALTER TABLE article_bands SET SORTED BY (band_key);
ALTER TABLE duplicates SET SORTED BY (article_id);
ALTER TABLE mentions SET SORTED BY (article_id);
ALTER TABLE article_entity_runs SET SORTED BY (article_id);
ALTER TABLE articles_boilerplate SET SORTED BY (article_id);
ALTER TABLE article_search_docs SET SORTED BY (article_id);
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'articles');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'article_versions');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'article_fingerprints');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'article_bands');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'duplicates');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'mentions');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'article_entity_runs');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'articles_boilerplate');
CALL newsflow.set_option('parquet_row_group_size', 2048, table_name => 'article_search_docs');
