"""The YAML-facing component classes, one module each; `dagster_autopilot` exports them.

Each only translates its fields into Dagster objects; the asset logic lives in
`dagster_autopilot.pipelines`, and the automation conditions in `dagster_autopilot.automation`.
"""
