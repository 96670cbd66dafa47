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
import uuid
import weakref
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
        self._keys: dict[str, dg.AssetKey] = {}
        self._ids: dict[dg.AssetKey, str] = {}
        self.id = uuid.uuid4().hex[:12]
        # The sensor's and a run's threads may ask for the same shapes at once.
        self._lock = threading.RLock()

    def node(self, unique_id: str) -> Mapping[str, Any] | None:
        return self._manifest.get("nodes", {}).get(unique_id) or self._manifest.get("sources", {}).get(
            unique_id
        )

    def relation(self, unique_id: str) -> str | None:
        """The name a child's analyzed SQL uses for this node: its unique id (see `_analyze`)."""
        return relation_key(_stable_name(unique_id), self.dialect) if self.node(unique_id) else None

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
            # dbt writes a ref or source as the parent's relation name, which holds the target's
            # database and schema (the DuckDB file's name, a developer's schema). The analysis
            # names the parent by its unique id instead, so that a shape recorded under one
            # target compares with one computed under another.
            name = (self.node(parent) or {}).get("relation_name")
            if name:
                sql = sql.replace(name, _stable_name(parent))
            relation, columns = self.relation(parent), self.columns(parent)
            if relation is not None and columns is not None:
                schema[relation] = columns
        return analyze(sql, self.dialect, schema)

    def key_of(self, unique_id: str) -> dg.AssetKey | None:
        """The asset key of a node, once the dbt component has registered it."""
        return self._keys.get(unique_id)


def _stable_name(unique_id: str) -> str:
    return '"' + unique_id.replace('"', "") + '"'


LINEAGE_METADATA = "autopilot/lineage"
"""Asset metadata: which loaded dbt project holds the model's column lineage (one id per load).
The automation and the runs find the model's shape through it; without it (`change_detection:
code_version`, a Python asset) every update counts for every column."""

# The projects loaded in this process, by id. Weak: a reloaded project's shapes go with it. The
# automation sensor evaluates in the process that loaded the definitions (a user-code sensor), and
# so does a run's step.
_LOADED: weakref.WeakValueDictionary[str, ProjectShapes] = weakref.WeakValueDictionary()


def register(shapes: ProjectShapes, key: dg.AssetKey, unique_id: str) -> dict[str, str]:
    """Records that asset `key` is the node `unique_id`; returns the metadata to put on its spec."""
    _LOADED[shapes.id] = shapes
    shapes._ids[key] = unique_id
    shapes._keys[unique_id] = key
    return {LINEAGE_METADATA: shapes.id}


def model_of(key: dg.AssetKey, metadata) -> tuple[ProjectShapes, str] | None:
    """The project and node id of the asset `key` with spec `metadata`, if it was registered."""
    entry = (metadata or {}).get(LINEAGE_METADATA)
    shapes = _LOADED.get(getattr(entry, "value", entry)) if entry is not None else None
    unique_id = shapes._ids.get(key) if shapes is not None else None
    return None if unique_id is None else (shapes, unique_id)
