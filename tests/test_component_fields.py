"""Each constrained component field rejects a bad value, naming the field, while the YAML loads."""

import json

import pytest
from pydantic import ValidationError

from dagster_autopilot.components.automation_sensor import AutomationSensorComponent
from dagster_autopilot.components.landing_files import LandingFilesComponent
from dagster_autopilot.components.safe_scheduled_job import SafeScheduledJobComponent
from dagster_autopilot.components.vector_match import VectorMatchComponent

LANDING = {"asset_key": "raw", "landing_dir": "in", "id_column": "id", "columns": {"id": "text"}}
MATCH = {"candidates": "c", "jobs": "j", "output": "m"}
JOB = {"job_name": "j", "cron_schedule": "0 * * * *", "asset_selection": "*"}

CASES = [
    (VectorMatchComponent, MATCH, "top_k", 0, "top_k: must be at least 1"),
    (VectorMatchComponent, MATCH, "top_k", "ten", "top_k: expected an integer"),
    (VectorMatchComponent, MATCH, "top_k", True, "top_k: expected an integer"),
    (VectorMatchComponent, MATCH, "min_score", 1.5, "min_score: must be at most 1.0"),
    (VectorMatchComponent, MATCH, "min_score", -2, "min_score: must be at least -1.0"),
    (VectorMatchComponent, MATCH, "preview_rows", -1, "preview_rows: must be at least 0"),
    (VectorMatchComponent, MATCH, "automation", "eagre", "automation: 'eagre' is not a policy"),
    (LandingFilesComponent, LANDING, "max_text_chars", 0, "max_text_chars: must be at least 1"),
    (LandingFilesComponent, LANDING, "sensor_interval_seconds", 0, "must be at least 1"),
    (LandingFilesComponent, LANDING, "settle_seconds", -5, "settle_seconds: must be at least 0"),
    (LandingFilesComponent, LANDING, "automation", "lazzy", "automation: 'lazzy' is not a policy"),
    (AutomationSensorComponent, {}, "minimum_interval_seconds", 0, "must be at least 1"),
    (AutomationSensorComponent, {}, "max_assets_per_sensor", 501, "must be at most 500"),
    (SafeScheduledJobComponent, JOB, "cron_schedule", "hourly", "cron_schedule: 'hourly' is not"),
    (SafeScheduledJobComponent, JOB, "timezone", "Mars/Base", "timezone: 'Mars/Base' is not"),
]


@pytest.mark.parametrize(("component", "base", "field", "value", "message"), CASES)
def test_bad_value_fails_naming_the_field(component, base, field, value, message):
    with pytest.raises(ValidationError) as raised:
        component.resolve_from_yaml(json.dumps({**base, field: value}))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("component", "base"),
    [
        (VectorMatchComponent, MATCH),
        (LandingFilesComponent, LANDING),
        (AutomationSensorComponent, {}),
        (SafeScheduledJobComponent, JOB),
    ],
)
def test_good_values_load(component, base):
    assert component.resolve_from_yaml(json.dumps(base)) == component(**base)


def test_field_docstrings_reach_the_schema():
    schema = VectorMatchComponent.get_model_cls().model_json_schema()["properties"]
    assert schema["top_k"]["description"] == "How many jobs to keep per candidate."
    assert schema["candidates"]["description"].startswith("Asset key of the candidates'")
