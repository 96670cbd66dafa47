"""AutomationSensorComponent: the sensors that evaluate the automation conditions, on by default."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from dagster_autopilot._dagster_internals import MAX_ASSETS_PER_USER_CODE_SENSOR
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor
from dagster_autopilot.automation.sensor_split import parents_of, split_into_sensors
from dagster_autopilot.components.fields import ComponentModel, integer


def sensor_names(name: str, count: int) -> list[str]:
    """`name` for the first sensor (so a small project keeps its name), then `name_2`, `name_3`..."""
    return [name if i == 0 else f"{name}_{i + 1}" for i in range(count)]


class AutomationSensorComponent(ComponentModel):
    """Declares the automation condition sensors, RUNNING from the start.

    Dagster's implicit `default_automation_condition_sensor` is STOPPED by default, so without this
    nothing is ever requested until someone switches it on in the UI. The guardrails need
    user-code sensors, which may target at most 500 assets each: the component reads the assets
    of the other folders of the defs module and makes as many sensors as needed (`<name>`,
    `<name>_2`, ...), each covering at most `max_assets_per_sensor` automated assets, every
    automated asset in exactly one. The split follows the asset graph (`split_into_sensors`): a
    connected project stays in one sensor where it fits, so its updates go out in one run.
    """

    name: str = "autopilot_automation_sensor"
    """Name of the (first) sensor, as shown in the UI."""

    target: str = "*"
    """Dagster selection string of the assets these sensors evaluate."""

    minimum_interval_seconds: integer(minimum=1) = 10
    """Least seconds between ticks. The daemon checks sensors on a 5 s loop: 4 ticks at every loop
    (about every 5 s), while 10 ticks 10 to 15 s apart. Dagster's default is 30."""

    running_by_default: bool = True
    """Start the sensors RUNNING. Set `false` to start them STOPPED and switch them on in the UI."""

    max_assets_per_sensor: integer(minimum=1, maximum=MAX_ASSETS_PER_USER_CODE_SENSOR) = (
        MAX_ASSETS_PER_USER_CODE_SENSOR
    )
    """Automated assets per sensor; at most 500, Dagster's limit for user-code sensors."""

    run_tags: dict[str, str] = Field(default_factory=dict)
    """Tags added to every run these sensors launch, e.g. `autopilot/dbt_project: analytics`."""

    def asset_selections(self) -> dict[str, str]:
        """Checked against every component's assets once all are built (`defs_checks.py`)."""
        return {"target": self.target}

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        parents, keys = self._graph_and_automated_keys(context)
        if not keys:
            # Nothing found beside this component (e.g. assets defined outside the defs folders):
            # one sensor over the selection, which Dagster checks against the limit at each tick.
            return dg.Definitions(sensors=[self._sensor(self.name, self._selection())])
        groups = split_into_sensors(parents, keys, self.max_assets_per_sensor)
        names = sensor_names(self.name, len(groups))
        return dg.Definitions(
            sensors=[
                self._sensor(name, dg.AssetSelection.assets(*group))
                for name, group in zip(names, groups, strict=True)
            ]
        )

    def _selection(self) -> dg.AssetSelection:
        return dg.AssetSelection.from_string(self.target)

    def _sensor(self, name: str, target: dg.AssetSelection) -> AutopilotAutomationSensor:
        return AutopilotAutomationSensor(
            name,
            target=target,
            run_tags=self.run_tags or None,
            minimum_interval_seconds=self.minimum_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING
            if self.running_by_default
            else dg.DefaultSensorStatus.STOPPED,
        )

    def _graph_and_automated_keys(
        self, context: dg.ComponentLoadContext
    ) -> tuple[dict[dg.AssetKey, set[dg.AssetKey]], list[dg.AssetKey]]:
        """The assets of the other folders of the defs module, each with its parents there, and the
        keys among them with an automation condition, in `target`."""
        root = Path(context.defs_module_path)
        own = Path(context.path).resolve()
        assets: list = []
        resources: dict = {}
        for entry in sorted(root.iterdir()):
            if entry.name.startswith((".", "_")) or entry.resolve() == own:
                continue
            if entry.is_dir() and not any(entry.glob("defs.yaml")) and not any(entry.glob("*.py")):
                continue
            if entry.is_file() and entry.suffix != ".py":
                continue
            built = context.build_defs(entry)
            assets.extend(built.assets or [])
            resources.update(built.resources or {})
        specs = [
            spec
            for item in assets
            for spec in (item.specs if isinstance(item, dg.AssetsDefinition) else [item])
            if isinstance(spec, dg.AssetSpec)
        ]
        parents = parents_of(specs)
        keys = [spec.key for spec in specs if spec.automation_condition is not None]
        if self.target.strip() in ("*", ""):
            return parents, keys
        # With the assets' resources: Dagster builds no graph while a required resource is missing.
        graph = dg.Definitions(assets=assets, resources=resources).resolve_asset_graph()
        targeted = self._selection().resolve(graph, allow_missing=True)
        return parents, [key for key in keys if key in targeted]
