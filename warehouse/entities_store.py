"""Entities in the warehouse: stable ids for entity keys, cross-article alias resolution, mentions per article.

Every function takes an open connection and leaves transaction control to the caller, so an article's
old mentions are replaced by its new ones in the caller's one transaction. Batches go in as registered
Arrow tables with one set-based statement each, never one INSERT per row.

Id policy: an entity gets `id` = hash of the key it was first created with, and keeps it. Keys are
resolved in this order (see `_resolve`):
1. the exact key exists -> its entity;
2. a one-word name ("PERSON:lavrov") whose alias maps to exactly one multi-word entity of the same type
   ("Sergei Lavrov") -> that entity (an article that only says "Lavrov");
3. a multi-word name whose first or last word the same article also uses, while an entity with only
   that one word exists and no other multi-word entity claims the word -> that short entity is upgraded
   in place (key and name become the full name, id kept), so the result does not depend on whether
   "Lavrov" or "Sergei Lavrov" was loaded first;
4. otherwise a new entity.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.entities import normalise_name
from ingest.models import ArticleEntities
from warehouse.arrow import TS, registered


_MENTIONS_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()), ("entity_id", pa.int64()), ("surface", pa.string()), ("alias", pa.string()),
        ("start_char", pa.int32()), ("end_char", pa.int32()), ("snippet", pa.string()), ("raw_label", pa.string()),
        ("model", pa.string()), ("model_version", pa.string()),
    ]
)
_RUNS_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()), ("model", pa.string()), ("model_version", pa.string()),
        ("skipped_reason", pa.string()), ("mention_count", pa.int32()), ("first_seen_at", TS),
    ]
)
_ENTITIES_SCHEMA = pa.schema([("id", pa.int64()), ("key", pa.string()), ("name", pa.string()), ("type", pa.string())])
_IDS_SCHEMA = pa.schema([("id", pa.int64())])
_STR_IDS_SCHEMA = pa.schema([("id", pa.string())])
_STR_SCHEMA = pa.schema([("v", pa.string())])


def entity_id_for(key: str, salt: int = 0) -> int:
    """Stable positive 63-bit id for an entity key (salted only on a hash collision)."""
    data = key if salt == 0 else f"{key}#{salt}"
    return int.from_bytes(hashlib.sha256(data.encode("utf-8")).digest()[:8], "big") >> 1


@dataclass
class _BatchEntity:
    key: str
    name: str
    type: str
    norm: str  # normalised name (the key without its type)
    aliases: set[str] = field(default_factory=set)

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.norm.split())


@dataclass
class _Known:
    id: int
    key: str
    name: str
    type: str

    @property
    def multiword(self) -> bool:
        return len(self.key.split(":", 1)[1].split()) > 1


@dataclass
class EntityWrite:
    """What save_entities did."""

    articles: int = 0
    mentions: int = 0
    new_entities: list[int] = field(default_factory=list)
    upgraded_entities: list[int] = field(default_factory=list)
    touched_entities: int = 0


def _lookup(con: duckdb.DuckDBPyConnection, keys: set[str], aliases: set[str]) -> tuple[dict[str, _Known], dict[str, set[int]], dict[int, _Known]]:
    """Existing entities by key, and alias -> entity ids, for just this batch's keys and aliases."""
    by_key: dict[str, _Known] = {}
    by_id: dict[int, _Known] = {}
    alias_index: dict[str, set[int]] = defaultdict(set)
    with registered(con, "_ent_keys", [{"v": k} for k in keys], _STR_SCHEMA):
        for id_, key, name, type_ in con.execute(
            "SELECT e.id, e.key, e.name, e.type FROM entities e JOIN _ent_keys k ON e.key = k.v"
        ).fetchall():
            by_key[key] = by_id[id_] = _Known(id_, key, name, type_)
    with registered(con, "_ent_aliases", [{"v": a} for a in aliases], _STR_SCHEMA):
        for alias, id_, key, name, type_ in con.execute(
            "SELECT a.alias, e.id, e.key, e.name, e.type FROM entity_aliases a "
            "JOIN _ent_aliases q ON a.alias = q.v JOIN entities e ON e.id = a.entity_id"
        ).fetchall():
            alias_index[alias].add(id_)
            by_id.setdefault(id_, _Known(id_, key, name, type_))
    return by_key, alias_index, by_id


def _resolve(con: duckdb.DuckDBPyConnection, batch: dict[str, _BatchEntity]) -> tuple[dict[str, int], list[_Known], list[_Known]]:
    """Map each batch key to an entity id; return (key -> id, new entities, upgraded entities)."""
    short_keys = {f"{e.type}:{w}" for e in batch.values() if len(e.words) > 1 for w in {e.words[0], e.words[-1]}}
    aliases = {a for e in batch.values() for a in e.aliases} | {e.norm for e in batch.values()}
    by_key, alias_index, by_id = _lookup(con, set(batch) | short_keys, aliases)

    key_to_id: dict[str, int] = {}
    new: list[_Known] = []
    upgraded: list[_Known] = []
    # Ids a new entity would get that some stored entity already has (an upgraded name keeps its first
    # key's id, or a hash collision): one set-based query for the batch, not one query per new entity.
    taken_ids: set[int] = set(by_id) | _ids_existing(con, {entity_id_for(k) for k in batch if k not in by_key})

    def same_type_multiword(alias: str, etype: str, exclude: int | None = None) -> set[int]:
        return {i for i in alias_index.get(alias, ()) if i != exclude and by_id[i].type == etype and by_id[i].multiword}

    # Multi-word names first: a one-word name in the same batch can then resolve to them.
    for e in sorted(batch.values(), key=lambda e: (-len(e.words), e.key)):
        known = by_key.get(e.key)
        if known is None and len(e.words) == 1:
            targets = same_type_multiword(e.norm, e.type)
            if len(targets) == 1:
                known = by_id[targets.pop()]
        if known is None and len(e.words) > 1:
            shorts = []
            for w in {e.words[0], e.words[-1]}:
                short = by_key.get(f"{e.type}:{w}")
                if short is not None and w in e.aliases and not same_type_multiword(w, e.type, exclude=short.id):
                    shorts.append(short)
            if len(shorts) == 1:
                known = shorts[0]
                del by_key[known.key]
                known.key, known.name = e.key, e.name
                upgraded.append(known)
        if known is None:
            salt, new_id = 0, entity_id_for(e.key)
            while new_id in taken_ids or (salt > 0 and _id_exists(con, new_id)):
                salt += 1
                new_id = entity_id_for(e.key, salt)
            known = _Known(new_id, e.key, e.name, e.type)
            new.append(known)
            taken_ids.add(new_id)
        by_key[e.key] = by_id[known.id] = known
        key_to_id[e.key] = known.id
        for a in e.aliases:
            alias_index.setdefault(a, set()).add(known.id)
    return key_to_id, new, upgraded


def _ids_existing(con: duckdb.DuckDBPyConnection, ids: set[int]) -> set[int]:
    """The ids among `ids` that stored entities already have."""
    if not ids:
        return set()
    with registered(con, "_ent_ids", [{"id": i} for i in ids], _IDS_SCHEMA):
        return {row[0] for row in con.execute("SELECT e.id FROM entities e JOIN _ent_ids q ON e.id = q.id").fetchall()}


def _id_exists(con: duckdb.DuckDBPyConnection, entity_id: int) -> bool:
    return con.execute("SELECT count(*) FROM entities WHERE id = ?", [entity_id]).fetchall()[0][0] > 0


def save_entities(
    con: duckdb.DuckDBPyConnection, results: Sequence[ArticleEntities], articles_first_seen: dict[str, datetime],
    new_ids: Collection[str] = (),
) -> EntityWrite:
    """Replace the mentions of each result's article (in the caller's transaction), upserting entities and their counts.

    `new_ids`: articles whose rows the caller's transaction inserted; they have no stored mentions to find or delete.
    """
    by_article = {r.article_id: r for r in results}  # last one wins within a batch
    out = EntityWrite(articles=len(by_article))
    if not by_article:
        return out

    batch: dict[str, _BatchEntity] = {}
    for r in by_article.values():
        for m in r.mentions:
            e = batch.get(m.entity_key)
            if e is None:
                e = batch[m.entity_key] = _BatchEntity(m.entity_key, m.name, m.type, m.entity_key.split(":", 1)[1])
            e.aliases.add(normalise_name(m.surface))
    key_to_id, new, upgraded = _resolve(con, batch)
    out.new_entities = [k.id for k in new]
    out.upgraded_entities = [k.id for k in upgraded]

    mention_rows = [
        {
            "article_id": r.article_id, "entity_id": key_to_id[m.entity_key], "surface": m.surface,
            "alias": normalise_name(m.surface), "start_char": m.start, "end_char": m.end, "snippet": m.snippet,
            "raw_label": m.raw_label, "model": r.model, "model_version": r.model_version,
        }
        for r in by_article.values()
        for m in r.mentions
    ]
    # Two mentions on one span (should not happen) would break the primary key: keep the first.
    seen: set[tuple[str, int, int]] = set()
    mention_rows = [
        row for row in mention_rows
        if (k := (row["article_id"], row["start_char"], row["end_char"])) not in seen and not seen.add(k)
    ]
    out.mentions = len(mention_rows)
    run_rows = [
        {
            "article_id": r.article_id, "model": r.model, "model_version": r.model_version,
            "skipped_reason": r.skipped_reason, "mention_count": len(r.mentions),
            "first_seen_at": articles_first_seen.get(r.article_id),
        }
        for r in by_article.values()
    ]
    now = datetime.now(timezone.utc)

    new_ids = set(new_ids)
    stored = [{"id": a} for a in by_article if a not in new_ids]
    with registered(con, "_ent_runs", run_rows, _RUNS_SCHEMA), registered(con, "_ent_mentions", mention_rows, _MENTIONS_SCHEMA):
        touched = set(key_to_id.values())
        if stored:
            # Both statements scan mentions, which grows with the warehouse: a fresh ingest's batch (all new
            # articles) skips them.
            with registered(con, "_ent_stored", stored, _STR_IDS_SCHEMA):
                touched |= {row[0] for row in con.execute(
                    "SELECT DISTINCT m.entity_id FROM mentions m JOIN _ent_stored s ON m.article_id = s.id"
                ).fetchall()}
                con.execute("DELETE FROM mentions WHERE article_id IN (SELECT id FROM _ent_stored)")
        if new:
            with registered(con, "_ent_new", [vars(k) for k in new], _ENTITIES_SCHEMA):
                con.execute(
                    "INSERT INTO entities (id, key, name, type, article_count, created_at, updated_at) "
                    # No key constraints in the lake: never insert an id or key that already exists.
                    "SELECT id, key, name, type, 0, ?, ? FROM _ent_new n "
                    "WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.id = n.id OR e.key = n.key)",
                    [now, now],
                )
        if upgraded:
            with registered(con, "_ent_up", [vars(k) for k in upgraded], _ENTITIES_SCHEMA):
                con.execute(
                    "UPDATE entities SET key = u.key, name = u.name, updated_at = ? FROM _ent_up u WHERE entities.id = u.id",
                    [now],
                )
        con.execute(
            "INSERT INTO mentions (article_id, entity_id, surface, alias, start_char, end_char, snippet, raw_label, model, model_version) "
            "SELECT article_id, entity_id, surface, alias, start_char, end_char, snippet, raw_label, model, model_version FROM _ent_mentions"
        )
        con.execute(
            "MERGE INTO article_entity_runs t USING _ent_runs b ON t.article_id = b.article_id "
            "WHEN MATCHED THEN UPDATE SET model = b.model, model_version = b.model_version, "
            " skipped_reason = b.skipped_reason, mention_count = b.mention_count, copied_from = NULL, "
            " first_seen_at = coalesce(b.first_seen_at, t.first_seen_at), processed_at = ? "
            "WHEN NOT MATCHED THEN INSERT (article_id, model, model_version, skipped_reason, mention_count, copied_from, "
            " first_seen_at, processed_at) VALUES (b.article_id, b.model, b.model_version, b.skipped_reason, "
            " b.mention_count, NULL, b.first_seen_at, ?)",
            [now, now],
        )
    _refresh_entities(con, touched, now)
    out.touched_entities = len(touched)
    return out


def _refresh_entities(con: duckdb.DuckDBPyConnection, entity_ids: set[int], now: datetime) -> None:
    """Recompute article_count, first_seen_at and aliases of `entity_ids` from mentions + articles."""
    if not entity_ids:
        return
    with registered(con, "_ent_touched", [{"id": i} for i in entity_ids], _IDS_SCHEMA):
        # Only rows whose values change get a new updated_at, so re-saving the same input changes nothing.
        con.execute(
            "UPDATE entities SET article_count = s.n, first_seen_at = s.fs, updated_at = ? "
            "FROM ("
            " SELECT t.id, count(DISTINCT m.article_id) AS n, min(coalesce(a.first_seen_at, r.first_seen_at)) AS fs"
            " FROM _ent_touched t LEFT JOIN mentions m ON m.entity_id = t.id"
            " LEFT JOIN articles a ON a.id = m.article_id LEFT JOIN article_entity_runs r ON r.article_id = m.article_id"
            " GROUP BY t.id"
            ") s WHERE entities.id = s.id AND (entities.article_count <> s.n OR entities.first_seen_at IS DISTINCT FROM s.fs)",
            [now],
        )
        con.execute("DELETE FROM entity_aliases WHERE entity_id IN (SELECT id FROM _ent_touched)")
        # The example surface is the most frequent written form (ties: the smallest string, for determinism).
        con.execute(
            "INSERT INTO entity_aliases (alias, entity_id, surface, count) "
            "SELECT alias, entity_id, arg_max(surface, (n, surface)), sum(n) FROM ("
            " SELECT alias, entity_id, surface, count(*) AS n FROM mentions"
            " WHERE entity_id IN (SELECT id FROM _ent_touched) GROUP BY alias, entity_id, surface"
            ") GROUP BY alias, entity_id"
        )


def copy_entities(con: duckdb.DuckDBPyConnection, from_article_id: str, to_article_id: str) -> bool:
    """Give exact duplicate `to_article_id` the entities of its canonical `from_article_id`; False if it must run NER itself.

    Offsets index into articles.text, so reuse needs byte-identical text: a copy whose text differs only in
    whitespace or case has the same dedup content hash but other offsets, and gets False (run the model).
    """
    return to_article_id in copy_entities_many(con, [(from_article_id, to_article_id)])


_COPY_SCHEMA = pa.schema([("from_id", pa.string()), ("to_id", pa.string())])
_COPY_OK_SCHEMA = pa.schema([("from_id", pa.string()), ("to_id", pa.string()), ("first_seen_at", TS)])


def copy_entities_many(con: duckdb.DuckDBPyConnection, pairs: Sequence[tuple[str, str]]) -> set[str]:
    """copy_entities for many (canonical, duplicate) pairs, set-based; returns the duplicates that got entities.

    A batch's exact duplicates cost a handful of statements in all, not a handful each. A canonical that
    is itself a duplicate in `pairs` is copied first (rounds), as one call per pair in that order would.
    """
    copied: set[str] = set()
    todo = list(dict((to, (frm, to)) for frm, to in pairs).values())  # one canonical per duplicate
    now = datetime.now(timezone.utc)
    touched: set[int] = set()
    while todo:
        waiting = {to for _frm, to in todo}
        ready = [(frm, to) for frm, to in todo if frm not in waiting] or todo  # a cycle: copy what is there
        todo = [p for p in todo if p not in ready]
        with registered(con, "_ent_copy", [{"from_id": f, "to_id": t} for f, t in ready], _COPY_SCHEMA):
            # Articles filtered by a bound id list (the form of warehouse.queries.article_texts): joined to
            # _ent_copy directly, both sides read every article's text.
            ids = sorted({x for pair in ready for x in pair})
            rows = con.execute(
                "WITH a AS (SELECT id, text, first_seen_at FROM articles "
                " WHERE id IN (SELECT unnest(?::VARCHAR[])) AND list_contains(?::VARCHAR[], id)) "
                "SELECT c.from_id, c.to_id, b.first_seen_at FROM _ent_copy c "
                "JOIN a ON a.id = c.from_id JOIN a b ON b.id = c.to_id "
                "JOIN article_entity_runs r ON r.article_id = a.id WHERE a.text = b.text",
                [ids, ids],
            ).fetchall()
        if not rows:
            continue
        ok_rows = [{"from_id": f, "to_id": t, "first_seen_at": fs} for f, t, fs in rows]
        with registered(con, "_ent_copy_ok", ok_rows, _COPY_OK_SCHEMA):
            touched |= {r[0] for r in con.execute(
                "SELECT DISTINCT m.entity_id FROM mentions m JOIN ("
                " SELECT from_id AS id FROM _ent_copy_ok UNION SELECT to_id FROM _ent_copy_ok) c ON m.article_id = c.id"
            ).fetchall()}
            con.execute("DELETE FROM mentions WHERE article_id IN (SELECT to_id FROM _ent_copy_ok)")
            con.execute(
                "INSERT INTO mentions (article_id, entity_id, surface, alias, start_char, end_char, snippet, raw_label, model, model_version) "
                "SELECT c.to_id, m.entity_id, m.surface, m.alias, m.start_char, m.end_char, m.snippet, m.raw_label, m.model, m.model_version "
                "FROM mentions m JOIN _ent_copy_ok c ON m.article_id = c.from_id"
            )
            con.execute(
                "MERGE INTO article_entity_runs t USING (SELECT c.to_id AS article_id, r.model, r.model_version, r.skipped_reason, "
                " r.mention_count, r.article_id AS copied_from, c.first_seen_at FROM article_entity_runs r "
                " JOIN _ent_copy_ok c ON r.article_id = c.from_id) b "
                "ON t.article_id = b.article_id "
                "WHEN MATCHED THEN UPDATE SET model = b.model, model_version = b.model_version, skipped_reason = b.skipped_reason, "
                " mention_count = b.mention_count, copied_from = b.copied_from, first_seen_at = b.first_seen_at, processed_at = ? "
                "WHEN NOT MATCHED THEN INSERT (article_id, model, model_version, skipped_reason, mention_count, copied_from, "
                " first_seen_at, processed_at) VALUES (b.article_id, b.model, b.model_version, b.skipped_reason, b.mention_count, "
                " b.copied_from, b.first_seen_at, ?)",
                [now, now],
            )
        copied |= {r["to_id"] for r in ok_rows}
    _refresh_entities(con, touched, now)
    return copied


def articles_needing_entities(
    con: duckdb.DuckDBPyConnection, models_and_versions: dict[str, str], article_ids: Sequence[str] | None = None
) -> list[str]:
    """Article ids with no entity run yet, or one made by a model/version not in `models_and_versions` (model -> version)."""
    pairs = [{"v": f"{m}\x1f{v}"} for m, v in models_and_versions.items()]
    with registered(con, "_ent_current", pairs, _STR_SCHEMA):
        sql = (
            "SELECT a.id FROM articles a LEFT JOIN article_entity_runs r ON r.article_id = a.id "
            "WHERE (r.article_id IS NULL OR (r.model || chr(31) || r.model_version) NOT IN (SELECT v FROM _ent_current)) "
            # Skipped for lack of a model for the language: not retried on every run.
            "AND NOT coalesce(r.model = '' AND r.skipped_reason LIKE 'no_model_for_language:%', false) "
        )
        if article_ids is None:
            return [row[0] for row in con.execute(sql + "ORDER BY a.id").fetchall()]
        with registered(con, "_ent_only", [{"v": i} for i in article_ids], _STR_SCHEMA):
            return [row[0] for row in con.execute(sql + "AND a.id IN (SELECT v FROM _ent_only) ORDER BY a.id").fetchall()]


EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def example_query(name: str) -> str:
    """SQL text of an analyst example in warehouse/examples (top_people_this_week, cooccurrence_of_two, first_mention)."""
    return (EXAMPLES_DIR / f"{name}.sql").read_text(encoding="utf-8")
