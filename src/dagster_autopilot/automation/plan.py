"""What the definitions as they stand would rebuild, compared with what the instance last built.

`plan` reads the instance (each asset's latest materialization, the runs that built it) and the
loaded definitions, and writes nothing: no run, no event, no cursor.

- A changed asset is one whose code version differs from the one stamped on its latest
  materialization (`dagster/code_version`), or one never materialized (`missing`). Its category
  and columns come from comparing the shape its latest materialization recorded (`autopilot/shape`)
  with today's, as the materialization that rebuilds it will record them (`changes/affected.py`).
- Each change then travels down the asset graph the way the automation's upstream operand lets it
  (`upstream.py`, `changes/affected.sees_update`): a child that is a model of the same dbt project
  is rebuilt only when it reads one of the parent's affected columns, and the columns it then
  affects are the ones derived from them; any other child (a Python asset, a model of another
  project) sees every update and affects every column. Fail safe: what cannot be proved unread is
  read.
- When: the next tick for an asset rebuilt as soon as it is stale; the next cron tick of its
  policy for a cron asset; either moved to the end of its quiet hours when they hold it then.
"""

from __future__ import annotations

import datetime
import json
import statistics
from collections.abc import Iterable, Mapping

import dagster as dg

from dagster_autopilot.automation.apply import policy_of
from dagster_autopilot.automation.explain import quiet_hours_end
from dagster_autopilot.automation.guardrails import in_quiet_window
from dagster_autopilot.automation.policy import AutomationPolicy
from dagster_autopilot.automation.status import next_refresh, read_sensor_cursor, stored_sensors
from dagster_autopilot.changes.affected import (
    CODE_VERSION_TAG,
    SHAPE_METADATA,
    columns_json,
    union,
)
from dagster_autopilot.changes.lineage import (
    ALL,
    Change,
    Columns,
    ModelShape,
    affected_outputs,
    categorize,
    reads_any,
)
from dagster_autopilot.changes.project import model_of

MISSING = "missing"
"""The category of an asset never materialized."""
BREAKING_CATEGORIES = ("breaking", "unknown")
"""What `--fail-on breaking` fails on: an unknown change is treated as breaking on every column."""

# `when` of a rebuild, and its kinds.
NEXT_TICK = "next tick"
NOT_AUTOMATED = "not automated"
WHEN_NEXT_TICK = "next_tick"
WHEN_CRON = "cron"
WHEN_QUIET_HOURS_END = "quiet_hours_end"
WHEN_NOT_AUTOMATED = "not_automated"

# Reasons of a rebuild.
REASON_MISSING = "missing"
REASON_CODE_CHANGED = "code_changed"
REASON_PARENT_CHANGED = "parent_changed"

# Successful runs read back per asset for its estimated duration.
_RUNS_FOR_ESTIMATE = 5


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat()


def _as_json(entry):
    value = getattr(entry, "value", entry)
    return json.loads(value) if isinstance(value, str) else value


def _own_change(key: dg.AssetKey, node, last) -> Change | None:
    """The change of `key`'s code since `last` (its latest materialization record), categorized
    as the materialization that rebuilds it will record it; None when its code version is the one
    `last` was built with."""
    materialization = last.asset_materialization
    built_with = (materialization.tags or {}).get(CODE_VERSION_TAG)
    if built_with == node.code_version:
        return None
    entry = model_of(key, node.metadata)
    if entry is None:  # not a model whose shape is known: a code change affects every column
        return Change("unknown", ALL)
    shapes, unique_id = entry
    recorded = (materialization.metadata or {}).get(SHAPE_METADATA)
    before = ModelShape.from_metadata(_as_json(recorded)) if recorded is not None else None
    change = categorize(before, shapes.shape(unique_id))
    if change.category == "metadata_only" and node.code_version:
        # Same shape, another code version (a build config such as the materialization): the
        # run records it as unknown on every column (`change_metadata`), and so does the plan.
        return Change("unknown", ALL)
    return change


def _read_columns(child_shape: ModelShape | None, relation: str, columns: Columns) -> Columns:
    """Of `columns` (a parent's affected columns), those `child_shape` reads, as far as known."""
    if columns == ALL or child_shape is None:
        return columns
    read = child_shape.reads.get(relation)
    if read is None or read == ALL or relation in child_shape.star_relations:
        return columns
    return frozenset(read & columns)


def _seen_by(child: dg.AssetKey, child_node, parent: dg.AssetKey, columns: Columns):
    """(columns of `parent` that make `child` rebuilt, columns of `child` that then change), or
    None when `child` provably reads none of `columns`."""
    if columns != ALL and not columns:
        return None
    child_entry = model_of(child, child_node.metadata)
    if child_entry is None:
        return columns, ALL
    shapes, child_id = child_entry
    parent_id = next((p for p in shapes.parents(child_id) if shapes.key_of(p) == parent), None)
    relation = shapes.relation(parent_id) if parent_id else None
    node = shapes.node(parent_id) if parent_id else None
    if relation is None or (node or {}).get("resource_type") != "model":
        # Not a model parent read directly (a seed, a source, an asset behind views): new data,
        # every column, as the automation counts it.
        return columns, ALL
    if columns == ALL:
        return ALL, ALL  # no need to analyze the child's SQL: everything it reads changed
    shape = shapes.shape(child_id)
    if not reads_any(shape, relation, columns):
        return None
    return _read_columns(shape, relation, columns), affected_outputs(shape, {relation: columns})


def _when(policy: AutomationPolicy | None, now: datetime.datetime) -> tuple[str, str | None, str]:
    """(`when` in words or as an ISO time, the ISO time, its kind) for a rebuild under `policy`."""
    if policy is None:
        return NOT_AUTOMATED, None, WHEN_NOT_AUTOMATED
    at, kind = now, WHEN_NEXT_TICK
    if policy.is_cron:
        cron_at, _ = next_refresh(policy.model_copy(update={"freshness": None}), None, now)
        at, kind = datetime.datetime.fromisoformat(cron_at), WHEN_CRON
    window = policy.quiet_window
    if window is not None and in_quiet_window(at, *window):
        _, end, timezone = window
        at, kind = quiet_hours_end(at, end, timezone), WHEN_QUIET_HOURS_END
    if kind == WHEN_NEXT_TICK:
        return NEXT_TICK, _iso(at), kind
    return _iso(at), _iso(at), kind


def _estimated_seconds(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey], last_run_ids: Mapping
) -> dict[dg.AssetKey, float]:
    """The median duration of the last successful runs that materialized each of `keys`."""
    run_ids: dict[dg.AssetKey, list[str]] = {}
    for key in keys:
        if key not in last_run_ids:
            continue  # never materialized: no run to go by
        records = instance.fetch_materializations(key, limit=_RUNS_FOR_ESTIMATE * 2).records
        ids = list(dict.fromkeys(r.run_id for r in records if r.run_id))
        if ids:
            run_ids[key] = ids
    wanted = {run_id for ids in run_ids.values() for run_id in ids}
    durations: dict[str, float] = {}
    if wanted:
        runs = instance.get_run_records(
            filters=dg.RunsFilter(run_ids=sorted(wanted), statuses=[dg.DagsterRunStatus.SUCCESS])
        )
        for record in runs:
            if record.start_time is not None and record.end_time is not None:
                durations[record.dagster_run.run_id] = record.end_time - record.start_time
    estimates = {}
    for key, ids in run_ids.items():
        taken = [durations[run_id] for run_id in ids if run_id in durations][:_RUNS_FOR_ESTIMATE]
        if taken:
            estimates[key] = round(statistics.median(taken), 3)
    return estimates


def _next_tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, asset_graph, now: datetime.datetime
) -> tuple[set[dg.AssetKey] | None, list[str]]:
    """What the automation sensors' next ticks would request at `now`, evaluated as `explain`
    does (each sensor's stored cursor, Dagster's public `evaluate_automation_conditions`, the new
    cursor kept to itself), and the sensors that are stopped; None when no sensor automates."""
    sensors = [
        sensor
        for sensor in defs.sensors or []
        if isinstance(sensor, dg.AutomationConditionSensorDefinition)
    ]
    if not sensors:
        return None, []
    stored = stored_sensors(instance, defs)
    requested: set[dg.AssetKey] = set()
    for sensor in sensors:
        state = stored.get(sensor.name)
        keys = sensor.asset_selection.resolve(asset_graph, allow_missing=True)
        if not keys:
            continue
        evaluated = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=dg.AssetSelection.assets(*keys),
            evaluation_time=now,
            cursor=read_sensor_cursor(state.cursor, asset_graph) if state else None,
        )
        requested |= {
            r.key
            for r in evaluated.results
            if isinstance(r.key, dg.AssetKey) and not r.true_subset.is_empty
        }
    stopped = sorted(name for name, state in stored.items() if not state.running)
    return requested, [name for name in stopped if any(s.name == name for s in sensors)]


def plan(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    evaluation_time: datetime.datetime | None = None,
) -> dict:
    """What the definitions would rebuild if deployed on `instance` at `evaluation_time` (default:
    now): the changed assets with their category and columns, and each rebuild with its cause,
    when it happens and how long it took before. Reads the instance; writes nothing."""
    now = evaluation_time or datetime.datetime.now(datetime.UTC)
    asset_graph = defs.resolve_asset_graph()
    keys = [k for k in asset_graph.toposorted_asset_keys if asset_graph.get(k).is_materializable]
    lasts = {}
    for record in instance.get_asset_records(keys):
        last = record.asset_entry.last_materialization_record
        if last is not None:
            lasts[record.asset_entry.asset_key] = last

    changes: list[dict] = []
    # For each asset to rebuild: why, the causing columns per parent, and the columns it affects.
    reasons: dict[dg.AssetKey, list[str]] = {}
    own_changes: dict[dg.AssetKey, Change] = {}
    causes: dict[dg.AssetKey, dict[dg.AssetKey, Columns]] = {}
    affected: dict[dg.AssetKey, Columns] = {}
    for key in keys:  # parents first
        node = asset_graph.get(key)
        policy = policy_of(node.metadata) if node.automation_condition is not None else None
        last = lasts.get(key)
        own = Change(MISSING, ALL) if last is None else _own_change(key, node, last)
        if own is not None:
            own_changes[key] = own
            changes.append(
                {
                    "asset": key.to_user_string(),
                    "category": own.category,
                    "columns": columns_json(own.columns),
                    "code_version": node.code_version,
                    "built_with": None
                    if last is None
                    else (last.asset_materialization.tags or {}).get(CODE_VERSION_TAG),
                }
            )
        parent_effects = []
        for parent in sorted(node.parent_keys):
            columns = affected.get(parent)
            if columns is None:
                continue
            seen = _seen_by(key, node, parent, columns)
            if seen is not None:
                causes.setdefault(key, {})[parent] = seen[0]
                parent_effects.append(seen[1])
        if own is None and not parent_effects:
            continue
        why = []
        if own is not None:
            why.append(REASON_MISSING if own.category == MISSING else REASON_CODE_CHANGED)
        if parent_effects:
            why.append(REASON_PARENT_CHANGED)
        reasons[key] = why
        if policy is None:
            continue  # not rebuilt by the automation, so its children see no update from it
        own_columns = frozenset() if own is None else own.columns
        affected[key] = union([own_columns, *parent_effects])

    estimates = _estimated_seconds(instance, reasons, lasts)
    next_tick, stopped = _next_tick(defs, instance, asset_graph, now)
    rebuilds = []
    for key, why in reasons.items():
        node = asset_graph.get(key)
        policy = policy_of(node.metadata) or AutomationPolicy()
        when, at, kind = _when(policy if node.automation_condition is not None else None, now)
        if next_tick is not None and key in next_tick:
            # E.g. a cron tick that passed since the sensor's last tick: the next tick requests it.
            when, at, kind = NEXT_TICK, _iso(now), WHEN_NEXT_TICK
        by_parent = causes.get(key, {})
        own = own_changes.get(key)
        columns = union([own.columns if own else frozenset(), *by_parent.values()])
        rebuilds.append(
            {
                "asset": key.to_user_string(),
                "because": [parent.to_user_string() for parent in by_parent],
                "columns": columns_json(columns),
                "when": when,
                "estimated_seconds": estimates.get(key),
                "reasons": why,
                "causes": [
                    {"parent": parent.to_user_string(), "columns": columns_json(cols)}
                    for parent, cols in by_parent.items()
                ],
                "affected_columns": columns_json(affected[key]) if key in affected else None,
                "at": at,
                "when_kind": kind,
                "requested_on_next_tick": None if next_tick is None else key in next_tick,
            }
        )
    return {
        "evaluated_at": _iso(now),
        "changes": changes,
        "rebuilds": rebuilds,
        "breaking": any(c["category"] in BREAKING_CATEGORIES for c in changes),
        "next_tick": None if next_tick is None else sorted(key.to_user_string() for key in next_tick),
        "stopped_sensors": stopped,
    }


# --- Output -------------------------------------------------------------------------------------


def _columns_text(columns, code: bool = False) -> str:
    if columns == ALL:
        return "all columns"
    if not columns:
        return "none"
    return ", ".join(f"`{c}`" if code else c for c in columns)


def _because_text(rebuild: dict, code: bool = False) -> str:
    quote = (lambda name: f"`{name}`") if code else (lambda name: name)
    parts = []
    if REASON_MISSING in rebuild["reasons"]:
        parts.append("never materialized")
    if REASON_CODE_CHANGED in rebuild["reasons"]:
        parts.append("its code changed")
    for cause in rebuild["causes"]:
        parts.append(f"{quote(cause['parent'])} ({_columns_text(cause['columns'], code)})")
    return "; ".join(parts)


def _when_text(rebuild: dict) -> str:
    if rebuild["when_kind"] == WHEN_CRON:
        return f"{rebuild['when']} (cron)"
    if rebuild["when_kind"] == WHEN_QUIET_HOURS_END:
        return f"{rebuild['when']} (end of quiet hours)"
    return rebuild["when"]


def _seconds_text(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.1f} s"


def as_json(result: dict) -> str:
    return json.dumps(result, indent=2)


def as_text(result: dict) -> str:
    """The plan as plain text: one line per change, then one per rebuild."""
    lines = [f"Plan at {result['evaluated_at']}"]
    if not result["changes"]:
        lines.append("No changes: the code of every asset is what it was last built from.")
    else:
        lines.append(f"Changes ({len(result['changes'])}):")
        for change in result["changes"]:
            lines.append(
                f"  {change['asset']}: {change['category']} ({_columns_text(change['columns'])})"
            )
    if result["rebuilds"]:
        lines.append(f"Rebuilds ({len(result['rebuilds'])}):")
        for rebuild in result["rebuilds"]:
            lines.append(
                f"  {rebuild['asset']}: {_when_text(rebuild)}, because {_because_text(rebuild)}; "
                f"columns: {_columns_text(rebuild['columns'])}; "
                f"estimated {_seconds_text(rebuild['estimated_seconds'])}"
            )
    elif result["changes"]:
        lines.append("Rebuilds: none")
    return "\n".join(lines)


def as_markdown(result: dict) -> str:
    """The plan as Markdown tables, fit for a pull-request comment."""
    changes, rebuilds = result["changes"], result["rebuilds"]
    breaking = sum(c["category"] in BREAKING_CATEGORIES for c in changes)
    summary = (
        f"{len(changes)} changed, {breaking} breaking or unknown; {len(rebuilds)} to rebuild"
        if changes
        else "No changes: the code of every asset is what it was last built from"
    )
    lines = ["### autopilot plan", "", f"{summary} (evaluated at {result['evaluated_at']})."]
    if changes:
        lines += ["", "| Changed asset | Category | Columns |", "|---|---|---|"]
        for change in changes:
            lines.append(
                f"| `{change['asset']}` | {change['category']} "
                f"| {_columns_text(change['columns'], code=True)} |"
            )
    if rebuilds:
        lines += [
            "",
            "| Rebuilt asset | Because | Columns | When | Estimated |",
            "|---|---|---|---|---|",
        ]
        for rebuild in rebuilds:
            lines.append(
                f"| `{rebuild['asset']}` | {_because_text(rebuild, code=True)} "
                f"| {_columns_text(rebuild['columns'], code=True)} | {_when_text(rebuild)} "
                f"| {_seconds_text(rebuild['estimated_seconds'])} |"
            )
    return "\n".join(lines)
