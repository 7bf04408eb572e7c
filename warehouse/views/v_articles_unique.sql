-- Articles that are not recorded as a duplicate of an earlier one (canonicals and singletons).
CREATE OR REPLACE VIEW v_articles_unique AS
SELECT a.*
FROM articles a
WHERE NOT EXISTS (SELECT 1 FROM duplicates d WHERE d.article_id = a.id);
