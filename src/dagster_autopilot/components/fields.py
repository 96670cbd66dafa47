"""Typed fields shared by the components, and the base the pydantic components build on.

`dg` derives from each component the model it validates the YAML with, and lets every field also
take a string (a template, resolved when the component loads). A pydantic bound such as
`Field(ge=1)` would then apply to that union and fail on any string with a TypeError, so bounds
here are validators that see the raw value and let templates (`{{ ... }}`) through to the
component's own model, which checks them once resolved.
"""

from collections.abc import Callable
from typing import Annotated, Any

import dagster as dg
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
)

from dagster_autopilot.automation.cron import valid_cron, valid_timezone
from dagster_autopilot.automation.policy import PolicyInput, as_policy
from dagster_autopilot.components.schema_errors import ClearSchemaErrors


def _bounds(kinds: tuple[type, ...], minimum: float | None, maximum: float | None) -> Any:
    def check(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and "{{" in value:
            return value  # a template, checked by the component's model once resolved
        if isinstance(value, bool) or not isinstance(value, kinds):
            expected = "an integer" if kinds == (int,) else "a number"
            raise ValueError(f"{info.field_name}: expected {expected}, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"{info.field_name}: must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{info.field_name}: must be at most {maximum}, got {value}")
        return value

    return BeforeValidator(check)


def integer(minimum: int | None = None, maximum: int | None = None) -> Any:
    """An integer within the bounds; `true` or `"5"` is not an integer."""
    return Annotated[int, _bounds((int,), minimum, maximum)]


def number(minimum: float | None = None, maximum: float | None = None) -> Any:
    """A number (integer or decimal) within the bounds."""
    return Annotated[float, _bounds((int, float), minimum, maximum)]


def _policy(value: Any, info: ValidationInfo) -> Any:
    """`value` unless it cannot be read as an automation policy (e.g. the misspelt `eagre`).

    `dg` lets any string through a field that also takes a mapping (it may be a template), so the
    shorthand is checked here, while the YAML loads.
    """
    try:
        as_policy(value)
    except ValidationError as error:
        problems = "; ".join(
            ".".join([str(info.field_name), *(str(part) for part in problem["loc"])])
            + f": {problem['msg']}"
            for problem in error.errors()
        )
        raise ValueError(problems) from None
    return value


def _named(check: Callable[[str], str]) -> AfterValidator:
    """`check` as a validator whose error starts with the field's name."""

    def run(value: str, info: ValidationInfo) -> str:
        try:
            return check(value)
        except ValueError as error:
            raise ValueError(f"{info.field_name}: {error}") from None

    return AfterValidator(run)


Policy = Annotated[PolicyInput, dg.Resolver.passthrough(), AfterValidator(_policy)]
"""An automation policy: `eager`, `lazy`, `none` or a policy mapping."""

Cron = Annotated[str, _named(valid_cron)]
"""A cron schedule, e.g. `0 6 * * *`."""

Timezone = Annotated[str, _named(valid_timezone)]
"""An IANA timezone name, e.g. `Europe/Lisbon`."""


class ComponentModel(ClearSchemaErrors, dg.Component, dg.Model, dg.Resolvable):
    """A component declared as a pydantic model; each field's docstring is its description.

    `dg` derives the YAML model from these fields but drops the description of every field with a
    default, so the derived model gets them back here; they reach `dg list components` and the
    JSON schema.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    @classmethod
    def get_model_cls(cls):  # type: ignore[override]
        model = super().get_model_cls()
        if model is None:
            return None
        changed = False
        for name, info in model.model_fields.items():
            own = cls.model_fields.get(name)
            if own is not None and own.description and info.description != own.description:
                info.description = own.description
                changed = True
        if changed:
            model.model_rebuild(force=True)
        return model
