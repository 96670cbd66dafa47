"""Embedders and the matching kernel: plain Python and numpy, no Dagster, no database.

`top_k_cosine` is the matching kernel; `plan_embedding`, `plan_matches` and `merge_top_k` say what an
incremental run has to recompute; `HashingEmbedder` is the default embedder.
"""

from dagster_autopilot.vectors.embedders import (
    CostEstimate,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    estimate_cost,
)
from dagster_autopilot.vectors.matching import (
    EmbeddingPlan,
    MatchPlan,
    merge_top_k,
    normalize_rows,
    plan_embedding,
    plan_matches,
    top_k_cosine,
)

__all__ = [
    "CostEstimate",
    "Embedder",
    "EmbeddingPlan",
    "HashingEmbedder",
    "MatchPlan",
    "SentenceTransformerEmbedder",
    "estimate_cost",
    "merge_top_k",
    "normalize_rows",
    "plan_embedding",
    "plan_matches",
    "top_k_cosine",
]
