"""Embedding a table's text column into a vectors table, only for records that are new or changed."""

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np

from dagster_autopilot.vectors import Embedder, estimate_cost, plan_embedding
from dagster_autopilot.warehouse.connection import Column, Session, Warehouse

# Records embedded per batch: bounds the memory of texts and vectors held at once.
EMBED_BATCH_ROWS = 5_000

# Asset metadata of a vectors asset: where its records come from and the embedder's config, so a
# cost estimate can be made from the definitions alone, before anything runs.
EMBEDDING_METADATA = "autopilot/embedding"


@dataclass(frozen=True)
class EmbeddingSource:
    """Where the records are and which columns matter."""

    table: str
    id_column: str
    text_column: str
    hash_column: str


@dataclass
class EmbeddingReport:
    records_total: int
    records_embedded: int
    records_unchanged: int
    records_deleted: int
    tokens: int
    characters: int
    estimated_cost_usd: float

    def metadata(self, embedder: Embedder) -> dict[str, object]:
        return {
            "records_processed": self.records_embedded,
            "records_skipped_unchanged": self.records_unchanged,
            "records_deleted": self.records_deleted,
            "tokens_embedded": self.tokens,
            "characters_embedded": self.characters,
            "estimated_cost_usd": self.estimated_cost_usd,
            "price_per_1k_tokens": embedder.price_per_1k_tokens,
            "embedder": embedder.name,
            "dagster/row_count": self.records_total,
        }


def vector_columns(id_column: str) -> list[Column]:
    return [
        (id_column, "text"),
        ("content_hash", "text"),
        ("embedder", "text"),
        ("embedding", "vector"),
        ("embedded_at", "timestamp"),
    ]


def stored_hashes(session: Session, target: str, id_column: str, embedder: Embedder) -> dict:
    """Content hash of each stored vector. A vector made by another embedder counts as stale."""
    if not session.table_exists(target):
        return {}
    if _stored_dimensions(session, target) not in (None, embedder.dimensions):
        return {}  # the table is rebuilt at the new width
    rows = session.fetch_all(f"select {id_column}, content_hash, embedder from {target}")
    return {record_id: digest for record_id, digest, name in rows if name == embedder.name}


def source_hashes(session: Session, source: EmbeddingSource) -> dict:
    sql = f"select {source.id_column}, {source.hash_column} from {source.table}"
    return dict(session.fetch_all(sql))


def pending_texts(warehouse: Warehouse, source: EmbeddingSource, target: str, embedder: Embedder):
    """The plan and the texts it would embed; reads only, so a cost estimate can use it too."""
    with warehouse.connect() as session:
        if not session.table_exists(source.table):
            raise LookupError(
                f"table {source.table} does not exist in {warehouse.describe()}: "
                "materialize it before embedding it"
            )
        plan = plan_embedding(
            source_hashes(session, source),
            stored_hashes(session, target, source.id_column, embedder),
        )
        texts = _texts(session, source, plan.to_embed)
    return plan, texts


def embed_incrementally(
    warehouse: Warehouse, source: EmbeddingSource, target: str, embedder: Embedder
) -> EmbeddingReport:
    """Embeds new and changed records, deletes vectors of removed ones, keeps the rest untouched."""
    plan, texts = pending_texts(warehouse, source, target, embedder)
    cost = estimate_cost(embedder, [text for _, _, text in texts])
    now = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.connect() as session:
        columns = vector_columns(source.id_column)
        if session.table_exists(target) and _stored_dimensions(session, target) != embedder.dimensions:
            session.execute(f"drop table {target}")
        session.create_table(target, columns, dimensions=embedder.dimensions)
        session.delete_ids(target, source.id_column, [*plan.to_delete, *plan.to_embed])
        for start in range(0, len(texts), EMBED_BATCH_ROWS):
            batch = texts[start : start + EMBED_BATCH_ROWS]
            vectors = embedder.embed([text for _, _, text in batch])
            rows = (
                (record_id, digest, embedder.name, vector.tolist(), now)
                for (record_id, digest, _), vector in zip(batch, vectors, strict=True)
            )
            session.insert(target, [name for name, _ in columns], rows)
        total = session.fetch_all(f"select count(*) from {target}")[0][0]
    return EmbeddingReport(
        records_total=total,
        records_embedded=len(plan.to_embed),
        records_unchanged=plan.unchanged,
        records_deleted=len(plan.to_delete),
        tokens=cost.tokens,
        characters=cost.characters,
        estimated_cost_usd=cost.estimated_cost_usd,
    )


def _texts(session: Session, source: EmbeddingSource, ids: Sequence) -> list[tuple]:
    if not ids:
        return []
    wanted = set(ids)
    sql = (
        f"select {source.id_column}, {source.hash_column}, {source.text_column} "
        f"from {source.table} order by {source.id_column}"
    )
    return [row for row in session.fetch_all(sql) if row[0] in wanted]


def _stored_dimensions(session: Session, target: str) -> int | None:
    row = session.fetch_all(f"select embedding from {target} limit 1")
    return len(row[0][0]) if row else None


def read_vectors(session: Session, table: str, id_column: str) -> tuple[list, list, np.ndarray]:
    """Ids, content hashes and the float32 matrix of a vectors table, ordered by id."""
    rows = session.fetch_all(f"select {id_column}, content_hash, embedding from {table}")
    # Sorted here, not by SQL: a PostgreSQL collation may order ids unlike Python, and ties between
    # equal scores are broken by this order in full and incremental runs alike.
    rows.sort(key=lambda row: row[0])
    ids = [row[0] for row in rows]
    hashes = [row[1] for row in rows]
    matrix = np.asarray([row[2] for row in rows], dtype=np.float32)
    return ids, hashes, matrix


def embedding_plan_metadata(source: EmbeddingSource, target: str, embedder_config: dict) -> str:
    return json.dumps({"source": asdict(source), "target": target, "embedder": embedder_config})


@dataclass(frozen=True)
class PendingCost:
    """What embedding the pending records of one vectors asset would cost, before it runs."""

    asset: str
    embedder: str
    records_to_embed: int
    records_to_delete: int
    records_unchanged: int
    tokens: int
    characters: int
    estimated_cost_usd: float


def estimate_pending_cost(
    asset: str, metadata_json: str, warehouse: Warehouse, build_embedder: Callable[[dict], Embedder]
) -> PendingCost:
    """Reads the plan an embedding run would follow now, and prices it; writes nothing."""
    declared = json.loads(metadata_json)
    embedder = build_embedder(declared["embedder"])
    source = EmbeddingSource(**declared["source"])
    plan, texts = pending_texts(warehouse, source, declared["target"], embedder)
    cost = estimate_cost(embedder, [text for _, _, text in texts])
    return PendingCost(
        asset=asset,
        embedder=embedder.name,
        records_to_embed=len(plan.to_embed),
        records_to_delete=len(plan.to_delete),
        records_unchanged=plan.unchanged,
        tokens=cost.tokens,
        characters=cost.characters,
        estimated_cost_usd=cost.estimated_cost_usd,
    )
