"""AutomationSensorComponent: the sensor that evaluates the automation conditions, on by default."""

from dataclasses import dataclass

import dagster as dg


@dataclass
class AutomationSensorComponent(dg.Component, dg.Resolvable):
    """Declares the automation condition sensor, RUNNING from the start.

    Dagster's implicit `default_automation_condition_sensor` is STOPPED by default, so without this
    nothing is ever requested until someone switches it on in the UI.
    """

    name: str = "autopilot_automation_sensor"
    """Name of the sensor, as shown in the UI."""

    target: str = "*"
    """Dagster selection string of the assets this sensor evaluates."""

    minimum_interval_seconds: int = 10
    """Seconds between ticks. The daemon checks sensors on a 5 s loop, so with 10 s an upstream
    update is requested 10 to 15 s later (plus the tick itself), against 30 to 35 s by default."""

    running_by_default: bool = True
    """Start the sensor RUNNING. Set `false` to start it STOPPED and switch it on in the UI."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        sensor = dg.AutomationConditionSensorDefinition(
            name=self.name,
            target=dg.AssetSelection.from_string(self.target),
            minimum_interval_seconds=self.minimum_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING
            if self.running_by_default
            else dg.DefaultSensorStatus.STOPPED,
        )
        return dg.Definitions(sensors=[sensor])
