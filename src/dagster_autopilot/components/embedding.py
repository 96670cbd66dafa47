"""EmbeddingComponent: a vectors asset that embeds only the new and changed records of a table."""

import hashlib
from typing import Annotated, Literal

import dagster as dg
from dagster.components.resolved.model import Resolver

from dagster_autopilot.automation.apply import apply_policy, with_run_tags
from dagster_autopilot.automation.run_explain import explain_metadata
from dagster_autopilot.components.fields import ComponentModel, Policy
from dagster_autopilot.pipelines.embedding import (
    EMBEDDING_METADATA,
    EmbeddingSource,
    embed_incrementally,
    embedding_plan_metadata,
)
from dagster_autopilot.vectors import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from dagster_autopilot.warehouse.connection import table_name
from dagster_autopilot.warehouse.resource import (
    DEFAULT_WAREHOUSE,
    WAREHOUSE_RESOURCE_KEY,
    WarehouseResource,
)


class EmbedderConfig(dg.Model):
    """Which embedder turns text into vectors, and what it costs."""

    kind: Literal["hashing", "sentence_transformers"] = "hashing"
    """`hashing`: deterministic scikit-learn hashing features, no download, no fitting (default).
    `sentence_transformers`: a model already on disk (needs the `sentence-transformers` extra)."""

    dimensions: int = 384
    """Vector width for `hashing` (a sentence-transformers model has its own)."""

    model_path: str | None = None
    """For `sentence_transformers`: a local model folder or the name of an installed model package."""

    price_per_1k_tokens: float = 0.0
    """Price used for cost metadata and estimates; 0 for a local embedder."""

    def build(self) -> Embedder:
        if self.kind == "hashing":
            return HashingEmbedder(dimensions=self.dimensions)
        if not self.model_path:
            raise ValueError("embedder.model_path: required for kind `sentence_transformers`")
        return SentenceTransformerEmbedder(self.model_path, price_per_1k_tokens=self.price_per_1k_tokens)


class EmbeddingComponent(ComponentModel):
    """Embeds a text column of a warehouse table into a vectors table, incrementally.

    Only records whose content hash is new or changed are embedded; vectors of records that left
    the source are deleted. Each run records what it processed, skipped, and what that cost.
    Both tables are in the `warehouse` resource, which these definitions provide with its default.
    """

    source: str
    """Asset key of the table to embed, e.g. `normalized_candidates`; its table has the same name."""

    target: str
    """Asset key of the vectors table this component creates, e.g. `candidate_vectors`."""

    id_column: str
    """Column that identifies a record in `source`; the vectors table keeps the same name."""

    text_column: str = "text_to_embed"
    """Column holding the text to embed."""

    hash_column: str = "content_hash"
    """Column holding a hash of the text: a record is re-embedded only when it changes."""

    embedder: Annotated[EmbedderConfig, Resolver.passthrough()] = EmbedderConfig()
    """The embedder and its price, e.g. `{kind: hashing, dimensions: 384}`."""

    automation: Policy = "eager"
    """`eager`: embed as soon as `source` changes; `lazy`: only when asked; `none`: never
    automated. A full policy mapping (cron, freshness, backoff...) is accepted too."""

    group_name: str | None = None
    """Asset group shown in the UI."""

    def referenced_assets(self) -> dict[str, str]:
        """Checked against every component's assets once all are built (`defs_checks.py`)."""
        return {"source": self.source}

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        embedder = self.embedder.build()
        source = EmbeddingSource(
            table=table_name(self.source),
            id_column=self.id_column,
            text_column=self.text_column,
            hash_column=self.hash_column,
        )
        target_table = table_name(self.target)
        spec = apply_policy(
            dg.AssetSpec(
                key=dg.AssetKey.from_user_string(self.target),
                deps=[dg.AssetKey.from_user_string(self.source)],
                group_name=self.group_name,
                description=f"Vectors of `{self.source}`.{self.text_column} by {embedder.name}.",
                kinds={"python"},
                code_version=self._code_version(),
                metadata={
                    "embedder": embedder.name,
                    "dimensions": embedder.dimensions,
                    EMBEDDING_METADATA: embedding_plan_metadata(
                        source, target_table, self.embedder.model_dump()
                    ),
                },
            ),
            self.automation,
        )
        # Embedding runs are heavy; production caps how many run at once (deploy/dagster.yaml).
        spec = with_run_tags(spec, {"autopilot/kind": "embedding"})

        @dg.multi_asset(specs=[spec], name=f"embed_{target_table}")
        def embed(
            context: dg.AssetExecutionContext, warehouse: WarehouseResource
        ) -> dg.MaterializeResult:
            report = embed_incrementally(warehouse.warehouse(), source, target_table, embedder)
            context.log.info(
                "embedded %d records into %s (%d unchanged, %d deleted), %d tokens, $%.4f",
                report.records_embedded,
                target_table,
                report.records_unchanged,
                report.records_deleted,
                report.tokens,
                report.estimated_cost_usd,
            )
            return dg.MaterializeResult(
                metadata={**report.metadata(embedder), **explain_metadata(context, context.asset_key)}
            )

        return dg.Definitions(assets=[embed], resources={WAREHOUSE_RESOURCE_KEY: DEFAULT_WAREHOUSE})

    def _code_version(self) -> str:
        """Changes with the embedder or the columns read: such an edit re-embeds through automation."""
        embedder = self.embedder.model_dump_json(exclude={"price_per_1k_tokens"})
        config = (embedder, self.id_column, self.text_column, self.hash_column)
        return hashlib.sha256(repr(config).encode()).hexdigest()[:16]
