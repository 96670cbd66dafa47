"""Every private Dagster name the library uses, each with why no public one will do.

Dagster's `_`-prefixed modules change without notice between minor versions. Keeping them here
means a Dagster upgrade is checked in one file: `tests/test_dagster_internals.py` fails when the
installed Dagster or dagster-dbt leaves `SUPPORTED_DAGSTER` / `SUPPORTED_DAGSTER_DBT`, the ranges
this module was written against and the ones `pyproject.toml` pins, or when a name here is gone.
"""

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Dependencies that move with this file: a Dagster outside the range needs these names rechecked.
SUPPORTED_DAGSTER = ">=1.13,<1.14"
SUPPORTED_DAGSTER_DBT = ">=0.29,<0.30"

# Each private name, where it lives, and why the library needs it. Imported on first use (PEP 562):
# several of these modules are heavy (the CLI, the daemon) and most processes need one or two.
_PRIVATE_NAMES: dict[str, tuple[str, str]] = {
    # --- Automation sensor evaluation (automation/sensor.py, status.py, explain.py) ---
    # A user-code automation sensor may evaluate at most this many assets; the sensor component
    # splits larger projects at this limit. Dagster exports no public constant for it.
    "MAX_ASSETS_PER_USER_CODE_SENSOR": (
        "dagster._core.definitions.automation_condition_sensor_definition",
        "MAX_ENTITIES",
    ),
    # One automation tick as Dagster's user-code sensor evaluates it. The library's sensor runs the
    # same evaluation to read every asset's evaluation tree (the audit trail); no public API
    # returns the trees.
    "AutomationTickEvaluationContext": (
        "dagster._core.definitions.automation_tick_evaluation_context",
        "AutomationTickEvaluationContext",
    ),
    # Evaluates the automation conditions of some assets, as a tick does. `explain` uses it
    # rather than the public `evaluate_automation_conditions`, which also serializes and reads back
    # the cursor it is given and builds the next cursor: a fifth of an answer that evaluates 140
    # assets at 1,000 models, for nothing `explain` reads.
    "AutomationConditionEvaluator": (
        "dagster._core.definitions.declarative_automation.automation_condition_evaluator",
        "AutomationConditionEvaluator",
    ),
    # Wraps an evaluation function the way `SensorDefinition` does for its own; needed to give the
    # automation sensor an evaluation function of the library's (no public hook exists).
    "wrap_sensor_evaluation": ("dagster._core.definitions.sensor_definition", "wrap_sensor_evaluation"),
    # The instigator type of sensors, to read the automation sensors' cursors from the instance.
    "InstigatorType": ("dagster._core.scheduler.instigation", "InstigatorType"),
    # Whether a stored sensor state is running, stopped, or left to its default in code: `explain`
    # says when the sensor that would request an asset is stopped.
    "InstigatorStatus": ("dagster._core.scheduler.instigation", "InstigatorStatus"),
    # A sensor's stored state and where it comes from, to store a cursor as the sensor daemon does
    # after a tick (`store_sensor_cursor`); Dagster's public API writes no sensor state.
    "InstigatorState": ("dagster._core.scheduler.instigation", "InstigatorState"),
    "SensorInstigatorData": ("dagster._core.scheduler.instigation", "SensorInstigatorData"),
    "RemoteInstigatorOrigin": ("dagster._core.remote_origin", "RemoteInstigatorOrigin"),
    "RemoteRepositoryOrigin": ("dagster._core.remote_origin", "RemoteRepositoryOrigin"),
    "GrpcServerCodeLocationOrigin": ("dagster._core.remote_origin", "GrpcServerCodeLocationOrigin"),
    # An automation sensor's cursor, to and from the string the instance stores: the sensor's
    # evaluation must produce it, and the status reads the backoff guard's state from it.
    "asset_daemon_cursor_from_instigator_serialized_cursor": (
        "dagster._daemon.asset_daemon",
        "asset_daemon_cursor_from_instigator_serialized_cursor",
    ),
    "asset_daemon_cursor_to_instigator_serialized_cursor": (
        "dagster._daemon.asset_daemon",
        "asset_daemon_cursor_to_instigator_serialized_cursor",
    ),
    # The JSON inside that string: a quiet tick keeps its state as an extra field of it, which
    # Dagster's readers ignore (see automation/quiet_tick.py).
    "serialize_asset_daemon_cursor": ("dagster._daemon.asset_daemon", "_serialize_asset_daemon_cursor"),
    # The clock Dagster's automation evaluation reads (and `freeze_time` moves in tests): a quiet
    # tick compares the same time with its next time boundary.
    "get_current_datetime": ("dagster._time", "get_current_datetime"),
    # Whether a parent and a child can be built in the same run (same code location, partitions
    # mapped one-to-one); `UpstreamUpdated` counts a requested parent only then, as Dagster's
    # `any_deps_updated()` does.
    "executable_in_same_run": (
        "dagster._core.definitions.assets.graph.asset_graph",
        "executable_in_same_run",
    ),
    # Cron schedules: the next tick (the status's "next refresh") and a cron string's validity (YAML
    # checks), exactly as Dagster's schedules and `cron_tick_passed()` read them.
    "cron_string_iterator": ("dagster._utils.schedules", "cron_string_iterator"),
    # The latest cron tick at or before a time, as `cron_tick_passed()` reads it: `explain` names
    # the tick that fired a cron trigger.
    "reverse_cron_string_iterator": ("dagster._utils.schedules", "reverse_cron_string_iterator"),
    "is_valid_cron_string": ("dagster._utils.schedules", "is_valid_cron_string"),
    # --- Definitions loading (project.py, components/checks.py) ---
    # Whether this load initializes or reconstructs definitions: the second load of one process
    # reuses the first one's result (seconds at 1,000 dbt models).
    "DefinitionsLoadContext": (
        "dagster._core.definitions.definitions_load_context",
        "DefinitionsLoadContext",
    ),
    "DefinitionsLoadType": ("dagster._core.definitions.definitions_load_context", "DefinitionsLoadType"),
    # The selection kinds that name assets (`key:...`, plain keys), checked against the assets the
    # components define so that a misspelt key fails `dg check defs`.
    "KeysAssetSelection": ("dagster._core.definitions.asset_selection", "KeysAssetSelection"),
    "KeyWildCardAssetSelection": (
        "dagster._core.definitions.asset_selection",
        "KeyWildCardAssetSelection",
    ),
    # A component's YAML declaration, to report a bad reference at the file and line that made it.
    "YamlDecl": ("dagster.components.core.decl", "YamlDecl"),
    # The fields of a Dagster record (an asset selection), to walk a selection for the keys it names.
    "record_fields": ("dagster_shared.record", "as_dict"),
    # --- Runs (runs/launcher.py, runs/guard.py) ---
    # The run launcher runs each run as `dagster api execute_run` does, inside a forked process:
    # these are the pieces that command is made of, and the launcher interface it implements.
    "execute_run_command_body": ("dagster._cli.api", "_execute_run_command_body"),
    "start_run_cancellation_thread": (
        "dagster._core.execution.run_cancellation_thread",
        "start_run_cancellation_thread",
    ),
    "capture_interrupts": ("dagster._utils.interrupts", "capture_interrupts"),
    "InstanceRef": ("dagster._core.instance", "InstanceRef"),
    "ConfigurableClassData": ("dagster._serdes", "ConfigurableClassData"),
    "DefaultRunLauncher": ("dagster._core.launcher", "DefaultRunLauncher"),
    "LaunchRunContext": ("dagster._core.launcher", "LaunchRunContext"),
    "CheckRunHealthResult": ("dagster._core.launcher", "CheckRunHealthResult"),
    "WorkerStatus": ("dagster._core.launcher", "WorkerStatus"),
    # The statuses of a run that has not finished (queued, starting, started, canceling...): a new
    # run of a scheduled job must not overlap one of them, and `explain` names such a run as what
    # holds an asset back.
    "NOT_FINISHED_STATUSES": ("dagster._core.storage.dagster_run", "NOT_FINISHED_STATUSES"),
}


def __getattr__(name: str) -> Any:
    if name not in _PRIVATE_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _PRIVATE_NAMES[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


# --- Private members ---------------------------------------------------------------------------


def capture_evaluation_results(evaluation_context: Any) -> list[Sequence[Any]]:
    """A list that receives the per-asset `AutomationResult`s of `evaluation_context.evaluate()`.

    Dagster's tick evaluation keeps each asset's evaluation tree to itself and returns only their
    serialized summaries; the audit needs the trees (labels, metadata). So the evaluator's
    `evaluate` is wrapped to keep what it returns.
    """
    evaluator = evaluation_context._evaluator
    original_evaluate = evaluator.evaluate
    captured: list[Sequence[Any]] = []

    def evaluate_and_capture():
        results, subsets = original_evaluate()
        captured.append(results)
        return results, subsets

    evaluator.evaluate = evaluate_and_capture
    return captured


def evaluated_entity_keys(evaluation_context: Any) -> Any:
    """The assets and checks an `AutomationTickEvaluationContext` evaluates (those of its sensor
    with a condition), as Dagster resolved them."""
    return evaluation_context._evaluator.entity_keys


def narrow_evaluation(evaluation_context: Any, keys_for: Callable[[Any], Any]) -> None:
    """Makes `evaluation_context` evaluate only `keys_for(requests)`, a set that Dagster's
    evaluator tests each entity against, level by level; `requests` is the evaluator's mapping of
    this tick's requests so far.

    A busy tick evaluates only what its events can affect (`automation/partial_tick.py`). Dagster
    decides what to evaluate from this one attribute, and offers no parameter for a set that grows
    with the tick's own requests.
    """
    evaluator = evaluation_context._evaluator
    evaluator.entity_keys = keys_for(evaluator.request_subsets_by_key)


def prefetch_asset_records(evaluation_context: Any, keys: Any) -> None:
    """Reads the asset records of `keys` in one batch into the tick's cache, which every
    operand of the tick reads from; Dagster's evaluator exposes its queryer only as a member."""
    evaluation_context._evaluator.instance_queryer.prefetch_asset_records(keys)


def keep_condition_cursors(new_cursor: Any, previous_cursor: Any, keys: Any) -> Any:
    """`new_cursor`, with `previous_cursor`'s per-asset state for `keys`.

    Dagster's next cursor drops the state of every materializable asset it did not evaluate; a
    partial tick keeps the state of the assets it left unevaluated, as a full tick would have
    rewritten it unchanged.
    """
    kept = [
        cursor
        for key in keys
        if (cursor := previous_cursor.get_previous_condition_cursor(key)) is not None
    ]
    return dataclasses.replace(
        new_cursor, previous_condition_cursors=[*new_cursor.previous_condition_cursors, *kept]
    )


def set_sensor_evaluation(sensor: Any, evaluate: Callable[[Any], Any]) -> None:
    """Makes `evaluate(context)` the evaluation function of an automation condition sensor.

    `AutomationConditionSensorDefinition` wires Dagster's own evaluation in its constructor and
    offers no parameter for another; the library's sensor evaluates the same way, plus the audit.
    """
    sensor._raw_fn = evaluate
    wrap_sensor_evaluation = __getattr__("wrap_sensor_evaluation")
    sensor._evaluation_fn = wrap_sensor_evaluation(sensor.name, evaluate)


def store_sensor_cursor(
    instance: Any, sensor_name: str, cursor: str | None, running: bool = True
) -> None:
    """Stores `cursor` as the state of the sensor `sensor_name` in `instance`, where the sensor
    daemon keeps it after a tick; `running=False` stores it as stopped in the UI.

    The benchmarks tick a sensor in process and store its cursor for `status`, `explain` and
    `plan` to read, without a daemon or a code server: the state's origin names a placeholder code
    server, and the readers match a state by its sensor's name only.
    """
    origin = __getattr__("RemoteInstigatorOrigin")(
        __getattr__("RemoteRepositoryOrigin")(
            __getattr__("GrpcServerCodeLocationOrigin")(
                host="localhost", port=4266, location_name="project"
            ),
            "__repository__",
        ),
        sensor_name,
    )
    status = __getattr__("InstigatorStatus")
    state = __getattr__("InstigatorState")(
        origin,
        __getattr__("InstigatorType").SENSOR,
        status.RUNNING if running else status.STOPPED,
        __getattr__("SensorInstigatorData")(cursor=cursor),
    )
    if instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id()) is None:
        instance.add_instigator_state(state)
    else:
        instance.update_instigator_state(state)


def sensor_constructor_arguments(sensor: Any) -> dict[str, Any]:
    """The arguments an automation condition sensor was built with, to build a copy of it.

    `with_attributes` (called by `Definitions` to attach jobs or metadata) rebuilds the sensor from
    these; Dagster keeps them only as private attributes.
    """
    return {
        "target": sensor._sensor_target,
        "tags": sensor._tags,
        "run_tags": sensor._run_tags,
        "metadata": sensor._metadata,
        "emit_backfills": sensor._emit_backfills,
    }


class _SnapshotOnce:
    """A condition's `get_snapshot`, computed once for the condition as a root (see
    `snapshot_once`); a call for the condition inside another tree computes as Dagster does."""

    def __init__(self, condition: Any):
        self._condition = condition
        self._root: Any = None

    def __call__(self, *, parent_unique_id: str | None = None, index: int | None = None) -> Any:
        compute = type(self._condition).get_snapshot
        if parent_unique_id is not None or index is not None:
            return compute(self._condition, parent_unique_id=parent_unique_id, index=index)
        if self._root is None:
            self._root = compute(self._condition)
        return self._root


def snapshot_once(condition: Any) -> Any:
    """`condition`, whose snapshot as a root is computed once, however many assets share it.

    Dagster snapshots the condition tree of every asset whose condition it cannot serialize (ours,
    with the library's own operands), once per asset, each time it builds a code location's
    snapshot (`dg check defs`, `dg dev`): at 5,000 models 150,000 tree nodes hashed, 1.6 s of a
    `dg check defs`. A snapshot depends only on the tree, and the assets of one policy share one
    condition object. No public hook exists, so the memo is set on the object, as an attribute that
    shadows the method; condition equality (tuple equality) ignores it.
    """
    object.__setattr__(condition, "get_snapshot", _SnapshotOnce(condition))
    return condition


def dbt_project_copy_dir(component: Any, state_path: Path) -> Path:
    """Where a dagster-dbt `DbtProjectComponent` prepares its copy of the dbt project for
    `state_path`.

    The parse cache checks the manifest there before deciding to skip `dbt parse`; dagster-dbt
    computes the folder with a private method of a private member.
    """
    return component._project_manager._local_project_dir(state_path)


def dbt_prepare_cli_args(preparer: Any) -> list[str]:
    """The `dbt` arguments dagster-dbt's preparer parses a project with, to parse it the same way."""
    return list(preparer._prepare_project_cli_args)


def dbt_invalidate_seeds_in_partial_parse(preparer: Any, project: Any) -> None:
    """Makes dbt's partial parse re-read the seeds, as dagster-dbt does before each parse."""
    preparer._invalidate_seeds_in_partial_parse(project)


__all__ = [
    *_PRIVATE_NAMES,
    "SUPPORTED_DAGSTER",
    "SUPPORTED_DAGSTER_DBT",
    "capture_evaluation_results",
    "dbt_invalidate_seeds_in_partial_parse",
    "dbt_prepare_cli_args",
    "dbt_project_copy_dir",
    "evaluated_entity_keys",
    "keep_condition_cursors",
    "narrow_evaluation",
    "prefetch_asset_records",
    "sensor_constructor_arguments",
    "set_sensor_evaluation",
    "snapshot_once",
    "store_sensor_cursor",
]
