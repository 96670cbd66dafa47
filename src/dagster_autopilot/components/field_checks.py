"""Checks for component fields that `dg` cannot check by their type.

`dg` accepts any scalar where a dataclass component declares a number (a template may still be
unresolved), and Python does not check dataclass types, so `top_k: ten` would only fail deep inside
a run. These checks fail while `dg check defs` loads the YAML, naming the field.
"""

from pydantic import ValidationError

from dagster_autopilot.automation.policy import as_policy


def require_number(
    field_name: str,
    value: object,
    *,
    integer: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
) -> None:
    """Raises a ValueError naming `field_name` unless `value` is a number within the bounds."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = "an integer" if integer else "a number"
        raise ValueError(f"{field_name}: expected {expected}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field_name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{field_name}: must be at most {maximum}, got {value}")


def require_policy(field_name: str, value: object) -> None:
    """Raises a ValueError naming `field_name` unless `value` reads as an automation policy.

    `dg` lets any string through a field that also takes a mapping (it may be a template), so a
    misspelt shorthand such as `eagre` would otherwise fail only when the asset is built.
    """
    try:
        as_policy(value)
    except ValidationError as error:
        problems = "; ".join(
            ".".join([field_name, *(str(part) for part in problem["loc"])]) + f": {problem['msg']}"
            for problem in error.errors()
        )
        raise ValueError(problems) from None
