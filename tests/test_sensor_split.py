"""The sensor component covers 1,000+ automated assets with user-code sensors of at most 500 each."""

import textwrap
from pathlib import Path

import dagster as dg
import pytest
from harness import load_defs

from dagster_autopilot.automation.sensor import AutopilotAutomationSensor

AUTOMATED, MANUAL = 1200, 30


@pytest.fixture(scope="module")
def big_defs(tmp_path_factory) -> dg.Definitions:
    root = tmp_path_factory.mktemp("big")
    (root / "defs" / "automation").mkdir(parents=True)
    (root / "defs" / "automation" / "defs.yaml").write_text(
        "type: dagster_autopilot.AutomationSensorComponent\n"
        "attributes:\n  name: autopilot_automation_sensor\n"
    )
    (root / "defs" / "many").mkdir()
    (root / "defs" / "many" / "assets.py").write_text(
        textwrap.dedent(
            f"""
            import dagster as dg
            from dagster_autopilot.automation.apply import apply_policy

            @dg.definitions
            def defs():
                automated = [
                    apply_policy(dg.AssetSpec(f"a{{i:04d}}"), "eager")
                    for i in range({AUTOMATED})
                ]
                manual = [apply_policy(dg.AssetSpec(f"m{{i}}"), "lazy") for i in range({MANUAL})]

                @dg.multi_asset(specs=[*automated, *manual], can_subset=True)
                def many(context: dg.AssetExecutionContext):
                    for key in context.selected_asset_keys:
                        yield dg.MaterializeResult(asset_key=key)

                return dg.Definitions(assets=[many])
            """
        )
    )
    return load_defs(Path(root))


def test_every_automated_asset_is_in_exactly_one_sensor_of_at_most_500(big_defs):
    sensors = [s for s in big_defs.sensors if isinstance(s, AutopilotAutomationSensor)]
    assert [s.name for s in sensors] == [
        "autopilot_automation_sensor",
        "autopilot_automation_sensor_2",
        "autopilot_automation_sensor_3",
    ]
    graph = big_defs.resolve_asset_graph()
    targeted = [s.asset_selection.resolve(graph) for s in sensors]
    assert [len(keys) for keys in targeted] == [500, 500, 200]
    covered = [key for keys in targeted for key in keys]
    automated = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert len(automated) == AUTOMATED
    assert len(covered) == len(set(covered)) and set(covered) == automated


def test_a_split_sensor_evaluates_within_the_limit(big_defs):
    sensor = big_defs.get_sensor_def("autopilot_automation_sensor_3")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, repository_def=big_defs.get_repository_def()
        )
        data = sensor.evaluate_tick(context)
    requested = {k for r in data.run_requests for k in r.asset_selection}
    # Every asset is missing; this sensor requests its own 200 and nothing else.
    assert len(requested) == 200
    assert all(r.tags["trigger"] == "auto-materialize" for r in data.run_requests)
