"""VectorMatchComponent: each candidate's top-k jobs by exact cosine similarity, kept up to date."""

import hashlib

import dagster as dg

from dagster_autopilot.automation.apply import apply_policy
from dagster_autopilot.automation.run_explain import explain_metadata
from dagster_autopilot.components.fields import ComponentModel, Policy, integer, number
from dagster_autopilot.pipelines.matching import MatchSides, match_incrementally
from dagster_autopilot.warehouse.connection import table_name
from dagster_autopilot.warehouse.resource import (
    DEFAULT_WAREHOUSE,
    WAREHOUSE_RESOURCE_KEY,
    WarehouseResource,
)


class VectorMatchComponent(ComponentModel):
    """Matches every vector of `candidates` with its `top_k` most similar vectors of `jobs`.

    Scores are exact cosine similarities. Only new or changed candidates are matched against all
    jobs, and only new or changed jobs against all candidates; untouched pairs are kept. The
    output (`candidate_id`, `job_id`, `score`, `rank`, `matched_at`) is written in one transaction.
    All three tables are in the `warehouse` resource, which these definitions provide with its
    default.
    """

    candidates: str
    """Asset key of the candidates' vectors table, e.g. `candidate_vectors`."""

    jobs: str
    """Asset key of the jobs' vectors table, e.g. `job_vectors`."""

    output: str
    """Asset key of the matches table this component creates, e.g. `matches`."""

    candidate_id_column: str = "candidate_id"
    """Id column of the candidates' vectors table."""

    job_id_column: str = "job_id"
    """Id column of the jobs' vectors table."""

    top_k: integer(minimum=1) = 10
    """How many jobs to keep per candidate."""

    min_score: number(minimum=-1.0, maximum=1.0) = 0.0
    """Pairs scoring below this cosine similarity (between -1 and 1) are not stored."""

    automation: Policy = "eager"
    """`eager`: rematch as soon as either vectors table changes; `lazy`: only when asked; `none`:
    never automated. A full policy mapping (cron, freshness, backoff...) is accepted too."""

    preview_rows: integer(minimum=0) = 10
    """Best matches shown in the materialization's `top_matches` preview."""

    group_name: str | None = None
    """Asset group shown in the UI."""

    def referenced_assets(self) -> dict[str, str]:
        """Checked against every component's assets once all are built (`defs_checks.py`)."""
        return {"candidates": self.candidates, "jobs": self.jobs}

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        sides = MatchSides(
            candidates_table=table_name(self.candidates),
            candidate_id=self.candidate_id_column,
            jobs_table=table_name(self.jobs),
            job_id=self.job_id_column,
        )
        output_table = table_name(self.output)
        spec = apply_policy(
            dg.AssetSpec(
                key=dg.AssetKey.from_user_string(self.output),
                deps=[dg.AssetKey.from_user_string(k) for k in (self.candidates, self.jobs)],
                group_name=self.group_name,
                description=(
                    f"Top {self.top_k} `{self.jobs}` per `{self.candidates}` row by cosine "
                    f"similarity, scores >= {self.min_score}."
                ),
                kinds={"python"},
                code_version=self._code_version(),
            ),
            self.automation,
        )

        @dg.multi_asset(specs=[spec], name=f"match_{output_table}")
        def match(
            context: dg.AssetExecutionContext, warehouse: WarehouseResource
        ) -> dg.MaterializeResult:
            report = match_incrementally(
                warehouse.warehouse(),
                sides,
                output_table,
                self.top_k,
                self.min_score,
                preview_rows=self.preview_rows,
            )
            context.log.info(
                "matched into %s: %d candidates rescored, %d merged with %d changed jobs, "
                "%d untouched, %d dropped; %d rows",
                output_table,
                report.candidates_rescored,
                report.candidates_merged,
                report.jobs_changed,
                report.candidates_untouched,
                report.candidates_dropped,
                report.rows,
            )
            return dg.MaterializeResult(
                metadata={**report.metadata(), **explain_metadata(context, context.asset_key)}
            )

        return dg.Definitions(assets=[match], resources={WAREHOUSE_RESOURCE_KEY: DEFAULT_WAREHOUSE})

    def _code_version(self) -> str:
        """Changes with `top_k` or `min_score`: the stored matches would no longer follow them."""
        return hashlib.sha256(f"{self.top_k}:{self.min_score}".encode()).hexdigest()[:16]
