"""Checks across components, once every component of the tree has built its definitions.

A component sees only its own YAML, so a name that refers to another component's asset, or that
another component defines too, can only be checked here. Dagster alone would take an unknown
dependency for an external asset, let a selection of an unknown key select nothing, and report
a duplicate name without saying which files define it. Each problem is reported at the file,
document, line and field that cause it, the document named as `dg` prints its component tree:
`defs/talent/defs.yaml[4] (VectorMatchComponent), line 70, candidates: ...`.

A component takes part by declaring, as methods returning `{field name: value}`:
`referenced_assets()` (fields naming one asset key) and `asset_selections()` (fields holding a
Dagster selection string).
"""

import dataclasses
import difflib
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel

from dagster_autopilot import _dagster_internals as internals


class InvalidComponentReferenceError(Exception):
    """Components that refer to assets nothing defines, or define the same name twice."""


@dataclass(frozen=True)
class DeclaredComponent:
    """One YAML document's component, its definitions, and where it is written."""

    component: dg.Component
    defs: dg.Definitions
    decl: Any
    """The component's `YamlDecl` (a Dagster-internal type, see `_dagster_internals`)."""
    name: str
    """`defs/talent/defs.yaml[4] (VectorMatchComponent)`, as `dg` prints the component tree."""

    def at(self, field: str | None) -> str:
        """Where `field` is written (the document's start when the YAML leaves it to its default)."""
        tree = self.decl.source_tree.source_position_tree
        attributes = tree.children.get("attributes")
        written = attributes.children.get(field) if attributes is not None and field else None
        line = (written or tree).position.start.line
        return f"{self.name}, line {line}" + (f", {field}" if field else "")

    def field_holding(self, value: str) -> str | None:
        """The field whose value is `value`, to say which field defines a name."""
        if isinstance(self.component, BaseModel):
            names = list(type(self.component).model_fields)
        elif dataclasses.is_dataclass(self.component):
            names = [f.name for f in dataclasses.fields(self.component)]
        else:
            return None
        return next((name for name in names if getattr(self.component, name) == value), None)


def check_component_tree(tree: dg.ComponentTree) -> None:
    """Raises one error listing every duplicate name and every reference to an unknown asset."""
    declared = list(declared_components(tree))
    problems = [*duplicate_names(declared), *unknown_assets(declared)]
    if problems:
        raise InvalidComponentReferenceError(
            "Components that do not fit together:\n" + "\n".join(f"  {p}" for p in problems)
        )


def declared_components(tree: dg.ComponentTree) -> Iterator[DeclaredComponent]:
    """Every YAML-declared component with its (already built, cached) definitions."""
    documents = [
        (loc, decl)
        for loc, decl in tree.find_root_decl().iterate_loc_component_decl_pairs()
        if isinstance(decl, internals.YamlDecl) and decl.source_tree is not None
    ]
    files = Counter(decl.source_tree.source_position_tree.position.filename for _, decl in documents)
    for loc, decl in documents:
        filename = decl.source_tree.source_position_tree.position.filename
        name = os.path.relpath(filename, tree.defs_module_path.parent)
        if files[filename] > 1 and loc.instance_key is not None:
            name += f"[{loc.instance_key}]"
        component = tree.load_component(loc)
        yield DeclaredComponent(
            component=component,
            defs=tree.build_defs(loc),
            decl=decl,
            name=f"{Path(name).as_posix()} ({type(component).__name__})",
        )


def _defined_names(defs: dg.Definitions) -> dict[str, list[str]]:
    keys = []
    for item in defs.assets or []:
        keys.extend(item.keys if isinstance(item, dg.AssetsDefinition) else [item.key])
    return {
        "asset": [key.to_user_string() for key in keys],
        "job": [job.name for job in defs.jobs or []],
        "schedule": [schedule.name for schedule in defs.schedules or []],
        "sensor": [sensor.name for sensor in defs.sensors or []],
    }


def duplicate_names(declared: list[DeclaredComponent]) -> list[str]:
    """An asset key, job, schedule or sensor name defined by two components, at the second one."""
    problems = []
    first_definer: dict[tuple[str, str], DeclaredComponent] = {}
    clashing_jobs: set[tuple[int, int]] = set()
    for component in declared:
        for kind, names in _defined_names(component.defs).items():
            for name in names:
                first = first_definer.setdefault((kind, name), component)
                if first is component:
                    continue
                pair = (id(first), id(component))
                if kind == "schedule" and pair in clashing_jobs:
                    continue  # a job's schedule is named after the job, already reported
                if kind == "job":
                    clashing_jobs.add(pair)
                problems.append(
                    f"{component.at(component.field_holding(name))}: {kind} '{name}' is also "
                    f"defined by {first.at(first.field_holding(name))}; expected a {kind} "
                    "defined once"
                )
    return problems


def unknown_assets(declared: list[DeclaredComponent]) -> list[str]:
    """Fields that name an asset no component defines, with the closest defined name."""
    defined = {name for component in declared for name in _defined_names(component.defs)["asset"]}
    problems = []
    for component in declared:
        named = getattr(component.component, "referenced_assets", dict)()
        for field, key in named.items():
            if key not in defined:
                problems.append(f"{component.at(field)}: {_names_no_asset(key, defined)}")
        selections = getattr(component.component, "asset_selections", dict)()
        for field, text in selections.items():
            try:
                selection = dg.AssetSelection.from_string(text)
            except Exception as error:
                problems.append(f"{component.at(field)}: {text!r} is not a selection: {error}")
                continue
            problems.extend(
                f"{component.at(field)}: {_names_no_asset(pattern, defined)}"
                for pattern in _named_keys(selection)
                if not any(_wildcard(pattern).match(name) for name in defined)
            )
    return problems


def _names_no_asset(name: str, defined: set[str]) -> str:
    close = difflib.get_close_matches(name, defined, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"'{name}' names no asset{hint}; expected an asset defined in this project"


def _named_keys(selection: dg.AssetSelection) -> Iterator[str]:
    """The key patterns a selection names, at any depth (`key:a or key:b+` names `a` and `b`)."""
    if isinstance(selection, internals.KeyWildCardAssetSelection):
        yield selection.selected_key_wildcard
    elif isinstance(selection, internals.KeysAssetSelection):
        yield from (key.to_user_string() for key in selection.selected_keys)
    else:
        for value in internals.record_fields(selection).values():
            # An operand is a selection, or a list of them (selections are tuples themselves).
            operands = [value] if isinstance(value, dg.AssetSelection) else value
            for operand in operands if isinstance(operands, (list, tuple)) else []:
                if isinstance(operand, dg.AssetSelection):
                    yield from _named_keys(operand)


def _wildcard(pattern: str) -> re.Pattern[str]:
    # Dagster's rule for `key:` patterns: `*` matches any run of characters, nothing else is special.
    return re.compile("^" + re.escape(pattern).replace("\\*", ".*") + "$")
