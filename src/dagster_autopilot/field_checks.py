"""Checks for numeric component fields.

`dg` accepts any scalar where a dataclass component declares a number (a template may still be
unresolved), and Python does not check dataclass types, so `top_k: ten` would only fail deep inside
a run. These checks fail while `dg check defs` loads the YAML, naming the field.
"""


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
