"""The talent pipeline end to end with dbt: landed files -> raw -> normalized -> vectors -> matches.

Also the quality gate: on generated data, whose latent occupation is the ground truth, the
matches' precision@5 must stay above the floor measured and explained in the README.
"""

import json

import dagster as dg
import pytest
from harness import TALENT_ASSETS, copy_project, load_defs

from dagster_autopilot.samples.talent import CANDIDATE_SPEC, JOB_SPEC, generate, write_records
from dagster_autopilot.warehouse import Warehouse

# Measured 0.876 on this data (see README, "Match quality"); the floor leaves room for small
# changes to the embedder or the normalization, and fails if matching stops using the content.
PRECISION_AT_5_FLOOR = 0.8


@pytest.fixture(scope="module")
def landed_and_matched(tmp_path_factory: pytest.TempPathFactory):
    root = copy_project(tmp_path_factory.mktemp("talent"))
    candidates, jobs = generate(400, 120, seed=11)
    write_records(
        root / ".data/landing/candidates/batch-1.jsonl", candidates, CANDIDATE_SPEC, bad_rows=6
    )
    write_records(root / ".data/landing/jobs/batch-1.csv", jobs, JOB_SPEC, file_format="csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOPILOT_DUCKDB_PATH", str(root / "warehouse.duckdb"))
        defs = load_defs(root)
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                assets,
                instance=instance,
                selection=dg.AssetSelection.assets(*TALENT_ASSETS),
                raise_on_error=False,
            )
        with Warehouse.from_env().connect() as session:
            matches = session.fetch_all("select candidate_id, job_id, rank from matches")
    # The generated ids start where the shipped sample's do, so the landed file updates those
    # records: the latest version of each is the truth.
    truth = {}
    for sample in (root / "data/talent").glob("*.jsonl"):
        for line in sample.read_text().splitlines():
            record = json.loads(line)
            truth[record.get("candidate_id") or record["job_id"]] = record["occupation"]
    truth.update({r["candidate_id"]: r["occupation"] for r in candidates})
    truth.update({r["job_id"]: r["occupation"] for r in jobs})
    return result, matches, truth


def test_every_talent_asset_builds_from_the_landed_files(landed_and_matched):
    result, matches, _ = landed_and_matched
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == TALENT_ASSETS
    checks = result.get_asset_check_evaluations()
    assert checks, "the talent models' dbt tests surface as asset checks"
    assert [c.check_name for c in checks if not c.passed] == []

    raw = result.asset_materializations_for_node("land_raw_candidates")[0].metadata
    assert raw["records_quarantined"].value == 6
    assert raw["records_in"].value == raw["records_kept"].value + 6
    assert raw["records_kept"].value == 400 + 200, "the generated file and the shipped sample"

    vectors = result.asset_materializations_for_node("embed_candidate_vectors")[0].metadata
    assert vectors["records_processed"].value == 400, "one vector per candidate id"
    assert vectors["estimated_cost_usd"].value == 0.0

    shown = result.asset_materializations_for_node("match_matches")[0].metadata
    assert "| candidate_id | job_id | score | rank |" in shown["top_matches"].value
    assert shown["dagster/row_count"].value == len(matches)


def test_matches_find_the_candidates_occupation(landed_and_matched):
    _, matches, truth = landed_and_matched
    top_5 = [(c, j) for c, j, rank in matches if rank <= 5]
    hits = sum(truth[c] == truth[j] for c, j in top_5)
    precision = hits / len(top_5)
    print(f"precision@5 = {precision:.3f} over {len(top_5)} pairs")
    assert precision >= PRECISION_AT_5_FLOOR
