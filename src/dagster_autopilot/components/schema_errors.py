"""Component JSON schemas whose errors name the cause.

`dg check defs` first validates each component's YAML against the JSON schema of its model and
prints each error's own message. A field that takes several shapes is an `anyOf` (a policy mapping
or a shorthand string; and `dg` lets every field also be a template string), and a mistake inside
the mapping is then reported only as "... is not valid under any of the given schemas". Here the
shape is chosen by the value's JSON type instead (`if`/`then`/`else`), so the validator reports
the errors of the one shape the value has: `'corn' was unexpected`, or the allowed shorthands.
"""

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


class ClearSchemaErrors:
    """Mixin for a component: the schema `dg` checks its YAML against reports errors by shape."""

    @classmethod
    def get_model_cls(cls) -> type[BaseModel] | None:
        model = super().get_model_cls()  # type: ignore[misc]
        return with_clear_schema_errors(model) if model is not None else None


@functools.cache
def with_clear_schema_errors(model: type[BaseModel]) -> type[BaseModel]:
    """`model`, validating the same way, with a JSON schema that picks each `anyOf` by JSON type."""

    def model_json_schema(cls, *args, **kwargs) -> dict[str, Any]:
        return by_json_type(super(clear, cls).model_json_schema(*args, **kwargs))

    # The same name, so that validation errors still read "... for <Component>Model".
    clear = type(model.__name__, (model,), {"model_json_schema": classmethod(model_json_schema)})
    return clear


def by_json_type(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with each `anyOf` whose shapes differ in JSON type turned into `if`/`then`/`else`."""
    definitions = schema.get("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        node = {key: rewrite(value) for key, value in node.items()}
        if node.get("additionalProperties") is False and node.get("properties"):
            # "'corn' was unexpected" names the mistake; the allowed keys name what is expected.
            node["propertyNames"] = {"enum": sorted(node["properties"])}
        shapes = _shapes_by_type(node.get("anyOf", []), definitions)
        if shapes is None or len(shapes) < 2:
            return node
        del node["anyOf"]
        return {**node, **_choose_by_type(list(shapes.items()))}

    return rewrite(schema)


def _choose_by_type(shapes: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    (json_type, shape), rest = shapes[0], shapes[1:]
    if not rest:
        return shape
    return {"if": {"type": json_type}, "then": shape, "else": _choose_by_type(rest)}


def _shapes_by_type(
    alternatives: list[Any], definitions: Mapping[str, Any]
) -> dict[str, dict[str, Any]] | None:
    """The one shape for each JSON type, or None when the types alone cannot tell them apart."""
    shapes: dict[str, list[dict[str, Any]]] = {}
    for alternative in alternatives:
        json_type = _json_type(alternative, definitions)
        if json_type is None:
            return None
        shapes.setdefault(json_type, []).append(alternative)
    if {"integer", "number"} <= shapes.keys():
        return None  # every JSON integer is also a number
    chosen = {}
    for json_type, candidates in shapes.items():
        if len(candidates) == 1:
            chosen[json_type] = candidates[0]
        elif json_type == "string" and {"type": "string"} in candidates:
            # Any string may be a template, resolved when the component loads: its checks apply then.
            chosen[json_type] = {"type": "string"}
        else:
            return None
    return chosen


def _json_type(alternative: Any, definitions: Mapping[str, Any]) -> str | None:
    if not isinstance(alternative, Mapping):
        return None
    if "$ref" in alternative:
        return _json_type(definitions.get(alternative["$ref"].rsplit("/", 1)[-1]), definitions)
    if isinstance(alternative.get("type"), str):
        return alternative["type"]
    values = alternative.get("enum", [alternative["const"]] if "const" in alternative else [])
    if values and all(isinstance(value, str) for value in values):
        return "string"
    return None
