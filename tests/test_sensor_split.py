"""The sensor component covers 1,000+ automated assets with user-code sensors of at most 500 each,
split along the asset graph."""

import random
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from harness import MONDAY_1AM, SensorTicker, load_defs, run_at_clock

from dagster_autopilot.automation.sensor import AutopilotAutomationSensor
from dagster_autopilot.automation.sensor_split import (
    crossing_edges,
    parents_of,
    runs_per_tick,
    split_into_sensors,
)

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


# --- The split along the asset graph, on synthetic graphs -------------------------------------


def _keys(*names: str) -> list[dg.AssetKey]:
    return [dg.AssetKey(name) for name in names]


def _chain(prefix: str, length: int) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """`prefix1 -> prefix2 -> ... -> prefix<length>`, as `{child: {parent}}`."""
    keys = _keys(*(f"{prefix}{i}" for i in range(1, length + 1)))
    return {key: ({keys[i - 1]} if i else set()) for i, key in enumerate(keys)}


def _project(name: str, size: int) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """A small dbt-like project: a seed, then every model reads the previous one and the seed."""
    seed = dg.AssetKey(f"{name}_seed")
    models = _keys(*(f"{name}_m{i:02d}" for i in range(size - 1)))
    graph = {seed: set()}
    for i, model in enumerate(models):
        graph[model] = {seed, models[i - 1]} if i else {seed}
    return graph


def _group_of(groups: list[list[dg.AssetKey]]) -> dict[dg.AssetKey, int]:
    return {key: index for index, group in enumerate(groups) for key in group}


def test_the_split_puts_every_automated_asset_in_exactly_one_sensor():
    graph = {**_project("a", 14), **_project("b", 9), **_chain("c", 23)}
    lone = _keys(*(f"lone{i}" for i in range(7)))
    # A report without automation reads both projects: one component of 23, cut.
    manual = dg.AssetKey("manual_report")
    graph[manual] = {dg.AssetKey("a_m12"), dg.AssetKey("b_m07")}
    # A component without automation at all.
    unautomated = _chain("by_hand", 3)
    graph.update(unautomated)
    automated = [key for key in graph if key != manual and key not in unautomated] + lone

    groups = split_into_sensors(graph, automated, limit=10)

    placed = [key for group in groups for key in group]
    assert sorted(placed) == sorted(automated)
    assert all(len(group) <= 10 for group in groups)
    # 14 + 9 + 23 + 7 = 53 automated assets: the fewest groups of 10 is 6.
    assert len(groups) == 6


def test_a_connected_project_that_fits_stays_in_one_sensor():
    graph = {**_project("analytics", 9), **_project("finance", 4)}
    # Connected only through an asset without automation: still one project.
    middle, after = dg.AssetKey("finance_manual"), dg.AssetKey("finance_after_manual")
    graph[middle] = {dg.AssetKey("finance_m02")}
    graph[after] = {middle}
    lone = _keys(*(f"lone{i}" for i in range(6)))
    automated = [key for key in graph if key != middle] + lone

    groups = split_into_sensors(graph, automated, limit=10)

    group_of = _group_of(groups)
    for project in ("analytics", "finance"):
        members = [key for key in automated if key.to_user_string().startswith(project)]
        assert len({group_of[key] for key in members}) == 1, project
    assert len(groups) == 2  # 9 + 4 (+1 after the manual asset) + 6 lone ones in two of 10


def test_unconnected_projects_that_exceed_the_limit_together_go_to_separate_sensors_whole():
    first, second = _project("first", 7), _project("second", 6)
    groups = split_into_sensors({**first, **second}, [*first, *second], limit=10)
    assert sorted(map(sorted, groups)) == sorted([sorted(first), sorted(second)])


def test_components_are_packed_into_as_few_sensors_as_possible():
    sizes = {"p": 6, "q": 5, "r": 4, "s": 3, "t": 2}
    graph = {key: parents for name, size in sizes.items() for key, parents in _chain(name, size).items()}
    groups = split_into_sensors(graph, list(graph), limit=10)
    names = [sorted({key.to_user_string()[0] for key in group}) for group in groups]
    assert names == [["p", "r"], ["q", "s", "t"]]


def test_an_over_limit_component_is_cut_with_parents_in_earlier_sensors_than_children():
    graph = _project("big", 25)
    groups = split_into_sensors(graph, list(graph), limit=10)

    assert [len(group) for group in groups] == [10, 10, 5]
    group_of = _group_of(groups)
    edges = [(parent, key) for key, parents in graph.items() for parent in parents]
    assert all(group_of[parent] <= group_of[child] for parent, child in edges)
    assert any(group_of[parent] < group_of[child] for parent, child in edges)


def test_an_over_limit_component_keeps_whole_lineages_together():
    # Three lineages of 8 joined by one final model: 25 assets for sensors of 10.
    graph = {**_chain("a", 8), **_chain("b", 8), **_chain("c", 8)}
    graph[dg.AssetKey("z")] = set(_keys("a8", "b8", "c8"))
    groups = split_into_sensors(graph, list(graph), limit=10)

    group_of = _group_of(groups)
    assert len({group_of[key] for key in _chain("a", 8)}) == 1
    assert crossing_edges(graph, groups) == 4
    # One lineage's update: its own run, then the final model's; cut by layers instead, the
    # lineage would span all three sensors and take three.
    assert runs_per_tick(graph, groups, updated={dg.AssetKey("a1")}) == [1, 1]
    # Every root updated: each sensor requests at most twice, done within three ticks.
    assert runs_per_tick(graph, groups) == [2, 2, 1]


def test_the_split_is_the_same_whatever_order_the_assets_come_in():
    graph = {**_project("a", 14), **_project("b", 9), **_chain("c", 23), **_chain("d", 3)}
    expected = split_into_sensors(graph, list(graph), limit=10)
    shuffled = list(graph.items())
    random.Random(7).shuffle(shuffled)
    keys = [key for key, _ in shuffled]
    assert split_into_sensors(dict(shuffled), keys, limit=10) == expected
    assert split_into_sensors(dict(shuffled), keys[::-1], limit=10) == expected


def test_parents_are_read_from_the_specs_deps():
    specs = [
        dg.AssetSpec("seed"),
        dg.AssetSpec("model", deps=["seed", "outside_table"]),
        dg.AssetSpec("other", deps=["outside_table"]),
    ]
    assert parents_of(specs) == {
        dg.AssetKey("seed"): set(),
        dg.AssetKey("model"): {dg.AssetKey("seed")},
        # A key no spec defines links nothing.
        dg.AssetKey("other"): set(),
    }


def test_a_densely_joined_component_over_the_limit_is_cut_by_layers():
    # Five layers of ten; each model reads three of the layer before: every cut splits many pairs.
    layer = [_keys(*(f"l{depth}_{i}" for i in range(10))) for depth in range(5)]
    graph = {
        key: {layer[depth - 1][(i + step) % 10] for step in (0, 1, 3)} if depth else set()
        for depth in range(5)
        for i, key in enumerate(layer[depth])
    }
    groups = split_into_sensors(graph, list(graph), limit=20)

    assert groups == [sorted(layer[0] + layer[1]), sorted(layer[2] + layer[3]), sorted(layer[4])]
    # Every root updated: one run per sensor, each a tick after the one before.
    assert runs_per_tick(graph, groups) == [1, 1, 1]


# --- Real ticks: a child whose parent is in another sensor ------------------------------------


def _chain_project(root: Path, max_assets_per_sensor: int) -> dg.Definitions:
    """`seed -> parent -> child`, all eager, with sensors of at most `max_assets_per_sensor`."""
    (root / "defs" / "automation").mkdir(parents=True)
    (root / "defs" / "automation" / "defs.yaml").write_text(
        "type: dagster_autopilot.AutomationSensorComponent\n"
        "attributes:\n"
        "  name: chain_sensor\n"
        f"  max_assets_per_sensor: {max_assets_per_sensor}\n"
    )
    (root / "defs" / "chain").mkdir()
    (root / "defs" / "chain" / "assets.py").write_text(
        textwrap.dedent(
            """
            import dagster as dg
            from dagster_autopilot.automation.apply import apply_policy

            @dg.definitions
            def defs():
                specs = [
                    apply_policy(dg.AssetSpec("seed"), "eager"),
                    apply_policy(dg.AssetSpec("parent", deps=["seed"]), "eager"),
                    apply_policy(dg.AssetSpec("child", deps=["parent"]), "eager"),
                ]

                @dg.multi_asset(specs=specs, can_subset=True)
                def chain(context: dg.AssetExecutionContext):
                    for key in context.selected_asset_keys:
                        yield dg.MaterializeResult(asset_key=key)

                return dg.Definitions(assets=[chain])
            """
        )
    )
    return load_defs(root)


def _tickers(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[SensorTicker]:
    """One ticker per automation sensor of `defs`, in the order of their names."""
    sensors = [s for s in defs.sensors if isinstance(s, AutopilotAutomationSensor)]
    return [SensorTicker(defs, instance, MONDAY_1AM, sensor=sensor) for sensor in sensors]


def test_a_child_whose_parent_is_in_another_sensor_is_requested_on_a_later_tick(tmp_path):
    # Sensors of two: seed and parent in the first, the child alone in the second.
    defs = _chain_project(tmp_path, max_assets_per_sensor=2)
    with dg.instance_for_test() as instance:
        first, second = _tickers(defs, instance)
        run_at_clock(first, ["seed", "parent", "child"])
        assert (first.tick(), second.tick()) == (set(), set())
        run_at_clock(first, ["seed"])
        # The second sensor does not see the first one's request: the child waits for the run.
        assert (first.tick(), second.tick()) == ({"parent"}, set())
        run_at_clock(first, ["parent"])
        assert (first.tick(), second.tick()) == (set(), {"child"})
