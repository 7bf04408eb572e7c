-- Articles whose text changed since first seen: each replaced version with the size of the change
-- (characters and words added/removed vs the current text), most recent change first.
-- param: limit = 50
WITH pairs AS (
    SELECT a.id, a.title, a.source, a.url, v.valid_from, v.replaced_at,
           v.text AS old_text, a.text AS new_text
    FROM article_versions v
    JOIN articles a ON a.id = v.article_id
)
SELECT title, source, valid_from AS old_version_from, replaced_at,
       length(new_text) - length(old_text) AS chars_changed,
       len(list_filter(string_split_regex(new_text, '\s+'), w -> NOT list_contains(string_split_regex(old_text, '\s+'), w))) AS words_added,
       len(list_filter(string_split_regex(old_text, '\s+'), w -> NOT list_contains(string_split_regex(new_text, '\s+'), w))) AS words_removed,
       url
FROM pairs
ORDER BY replaced_at DESC, url
LIMIT $limit;
