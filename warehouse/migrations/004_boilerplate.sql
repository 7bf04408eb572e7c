-- Site boilerplate: lines removed from an article because they recur on other articles of its site (template
-- residue: subscription prompts, author boxes, legal notes). DuckLake-compatible: no keys or indexes;
-- warehouse/boilerplate.py rewrites an article's rows whenever the article is written.
-- key: (article_id, line)
CREATE TABLE articles_boilerplate (
    article_id  VARCHAR NOT NULL,
    line        VARCHAR NOT NULL,              -- the removed line, normalised as article texts are stored
    reason      VARCHAR NOT NULL,              -- why it went, e.g. "site_boilerplate: on >= 3 other articles of this site"
    removed_at  TIMESTAMPTZ NOT NULL
);
