"""The column shapes of a dbt project's models, from their compiled SQL, computed on demand.

A model's shape needs its parents' columns (to expand `select *`), so shapes are computed parents
first and kept for the life of the manifest. Seeds take their columns from the CSV header, sources
from their YAML `columns:`; a source without declared columns has unknown columns, and every model
reading it an unknown shape for the columns coming from it (treated as "every column").

Nothing here runs at load time: the automation asks for a shape only when a parent was rebuilt for
a code change, and a run only for the models it builds.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_autopilot.changes.lineage import ModelShape, analyze, relation_key


class ProjectShapes:
    """Shapes of the models of one parsed manifest."""

    def __init__(
        self,
        manifest: Mapping[str, Any],
        compiled_sql: Callable[[str], str | None],
        dialect: str,
        project_dir: Path,
    ):
        self._manifest = manifest
        self._compiled_sql = compiled_sql
        self.dialect = dialect
        self._project_dir = project_dir
        self._shapes: dict[str, ModelShape | None] = {}
        # The sensor's and a run's threads may ask for the same shapes at once.
        self._lock = threading.RLock()

    def node(self, unique_id: str) -> Mapping[str, Any] | None:
        return self._manifest.get("nodes", {}).get(unique_id) or self._manifest.get("sources", {}).get(
            unique_id
        )

    def relation(self, unique_id: str) -> str | None:
        """The normalized relation name the compiled SQL of a child uses for this node."""
        node = self.node(unique_id)
        name = node.get("relation_name") if node else None
        return relation_key(name, self.dialect) if name else None

    def parents(self, unique_id: str) -> list[str]:
        node = self.node(unique_id) or {}
        return list(node.get("depends_on", {}).get("nodes", []))

    def is_view(self, unique_id: str) -> bool:
        node = self.node(unique_id) or {}
        return node.get("resource_type") == "model" and (
            node.get("config", {}).get("materialized") == "view"
        )

    def columns(self, unique_id: str) -> tuple[str, ...] | None:
        """The node's output columns, or None when they cannot be known without the warehouse."""
        node = self.node(unique_id)
        if node is None:
            return None
        kind = node.get("resource_type")
        if kind == "source":
            declared = tuple(column.lower() for column in node.get("columns", {}))
            return declared or None
        if kind == "seed":
            return self._seed_columns(node)
        shape = self.shape(unique_id)
        return None if shape is None else shape.columns

    def _seed_columns(self, node: Mapping[str, Any]) -> tuple[str, ...] | None:
        path = self._project_dir / node.get("original_file_path", "")
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), None)
        except (OSError, UnicodeDecodeError):
            header = None
        return tuple(name.strip().lower() for name in header) if header else None

    def shape(self, unique_id: str) -> ModelShape | None:
        """The model's shape, or None when it has no compiled SQL or sqlglot cannot analyze it."""
        with self._lock:
            if unique_id not in self._shapes:
                self._shapes[unique_id] = self._analyze(unique_id)
            return self._shapes[unique_id]

    def _analyze(self, unique_id: str) -> ModelShape | None:
        node = self.node(unique_id)
        if node is None or node.get("resource_type") != "model":
            return None
        sql = self._compiled_sql(unique_id)
        if sql is None:
            return None
        schema: dict[str, tuple[str, ...]] = {}
        for parent in self.parents(unique_id):
            relation, columns = self.relation(parent), self.columns(parent)
            if relation is not None and columns is not None:
                schema[relation] = columns
        return analyze(sql, self.dialect, schema)


class ShapeRegistry:
    """Which dbt model each asset is, so the automation and the runs can find its shape.

    Filled by the dbt component as it builds its specs; the automation sensor evaluates in the
    same process (a user-code sensor), and so does a run's step.
    """

    def __init__(self):
        self._entries: dict[dg.AssetKey, tuple[ProjectShapes, str]] = {}
        self._keys: dict[tuple[int, str], dg.AssetKey] = {}

    def register(self, key: dg.AssetKey, shapes: ProjectShapes, unique_id: str) -> None:
        self._entries[key] = (shapes, unique_id)
        self._keys[(id(shapes), unique_id)] = key

    def lookup(self, key: dg.AssetKey) -> tuple[ProjectShapes, str] | None:
        return self._entries.get(key)

    def key_of(self, shapes: ProjectShapes, unique_id: str) -> dg.AssetKey | None:
        return self._keys.get((id(shapes), unique_id))


REGISTRY = ShapeRegistry()
