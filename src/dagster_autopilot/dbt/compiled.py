"""Code versions from a dbt model's compiled SQL, canonicalized with sqlglot.

The compiled SQL is what a model runs: it holds the values of the vars and environment variables
the model reads, the expansion of every macro (the project's and the packages'), and the relation
names of its refs and sources. Its canonical form (`changes/canonical.py`) ignores formatting,
comments, keyword case and identifier quoting, so a version built from it changes exactly when
what the model computes may change.

Compiling happens while the state is prepared (`dg` commands, the `dg dev` watcher), in-process,
and never opens the warehouse: connections are refused for the duration of the compile, and every
relation lookup answers without one. So a DuckDB file held by a running dbt build does not block
or fail it, and an introspective model (`run_query`, `get_columns_in_relation`, ...) fails to
compile and falls back to the logic hash. An incremental model is compiled twice, as a first build
(no table yet) and as an incremental run (the table exists), so an edit inside its
`is_incremental()` block changes its version too.

Each model's result is cached in the state folder under a key made of everything its compilation
reads (its node, the macros it calls, the relation names of its parents, the project's vars and
the environment variables it reads, the target, dbt's version): after an edit only the models
whose key changed are compiled again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_autopilot.dbt.code_versions import _LOGIC_CONFIG_KEYS, LogicCodeVersions

if TYPE_CHECKING:
    from dagster_dbt import DbtProject

CACHE_FILE = "compiled_sql.json"
# Bumped whenever the cache's layout or the meaning of its fields changes.
CACHE_FORMAT = 1

# Models compiled in this process, by cache key: the key holds everything a compilation reads, so
# another copy of the same project (a test's, a reloaded code location's) reuses them.
_COMPILED_IN_PROCESS: dict[str, CompiledModel] = {}

COMPILED = "compiled SQL"
"""The source of a code version made from the canonical compiled SQL."""

INTROSPECTIVE = "introspective query: compiling it needs the warehouse, which code versions never open"
UNPARSEABLE = "sqlglot cannot parse the compiled SQL"
PYTHON_MODEL = "a Python model: no SQL to canonicalize"
NOT_COMPILED = "dbt could not compile the project"

# dbt adapter types whose sqlglot dialect has another name.
_DIALECTS = {"sqlserver": "tsql", "fabric": "tsql", "synapse": "tsql", "databricks": "databricks"}
# Node fields that change on every parse, or that compiling itself fills in.
_VOLATILE_NODE_FIELDS = frozenset(
    {"created_at", "compiled", "compiled_code", "extra_ctes", "extra_ctes_injected", "compiled_path"}
)
_ENV_VAR_USE = re.compile(r"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")
# The guards below patch dbt classes for the whole process: one compile at a time.
_COMPILE_LOCK = threading.Lock()


class WarehouseNotOpenedError(RuntimeError):
    """Raised when a model's compilation asks for a connection: it is introspective."""

    def __init__(self) -> None:
        super().__init__(INTROSPECTIVE)


@dataclass(frozen=True)
class CompiledModel:
    """What compiling one model gave, as cached in the state folder."""

    key: str
    """A hash of everything the model's compilation reads."""
    sql: str | None = None
    """The compiled SQL of a first build (for an incremental model: with no table yet)."""
    incremental_sql: str | None = None
    """An incremental model's compiled SQL when its table exists (`is_incremental()` true)."""
    canonical: str | None = None
    """Fingerprint of the canonical form of the SQL above; None when it could not be had."""
    reason: str | None = None
    """Why there is no canonical fingerprint (the model falls back to the logic hash)."""


def sql_dialect(adapter_type: str | None) -> str:
    """The sqlglot dialect of a dbt adapter type (`duckdb`, `postgres`, ...); "" if sqlglot has none."""
    if not adapter_type:
        return ""
    name = _DIALECTS.get(adapter_type, adapter_type)
    from sqlglot.dialects.dialect import Dialect

    return name if Dialect.get(name) is not None else ""


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def warm_up() -> None:
    """Imports what compiling needs, so that the first compile after a save does not wait for it."""
    import dbt.cli.main
    import dbt.task.compile  # noqa: F401

    import dagster_autopilot.changes.canonical  # noqa: F401


def _global_key(manifest: Mapping[str, Any], project: DbtProject) -> str:
    """What every model's compilation reads: vars, environment variables, target, dbt's version."""
    digest = hashlib.sha256(f"format={CACHE_FORMAT}".encode())
    adapter_type = manifest.get("metadata", {}).get("adapter_type")
    for package in ("dbt-core", "dbt-adapters", f"dbt-{adapter_type}"):
        digest.update(f"\0{package}={_package_version(package)}".encode())
    texts: list[str] = []
    # Vars live in the dbt_project.yml of the project and of each installed package.
    project_dir = Path(project.project_dir)
    for path in [project_dir / "dbt_project.yml", *sorted(project_dir.glob("*/*/dbt_project.yml"))]:
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    profiles = Path(project.profiles_dir) / "profiles.yml"
    if profiles.is_file():
        texts.append(profiles.read_text(errors="replace"))
    for text in texts:
        digest.update(b"\0")
        digest.update(text.encode())
    env_vars: set[str] = {"DBT_TARGET", "DBT_PROFILE"}
    for text in texts:
        env_vars.update(_ENV_VAR_USE.findall(text))
    for macro in manifest.get("macros", {}).values():
        env_vars.update(_ENV_VAR_USE.findall(macro.get("macro_sql", "")))
    for node in manifest.get("nodes", {}).values():
        env_vars.update(_ENV_VAR_USE.findall(node.get("raw_code") or ""))
    for name in sorted(env_vars):
        digest.update(f"\0{name}={os.environ.get(name)}".encode())
    digest.update(f"\0target={project.target}\0profile={project.profile}".encode())
    return digest.hexdigest()


class _Keys:
    """The cache key of each model of one manifest."""

    def __init__(self, manifest: Mapping[str, Any], global_key: str):
        self._manifest = manifest
        self._global = global_key
        self._macros = manifest.get("macros", {})
        self._logic = LogicCodeVersions(manifest)
        self._keys: dict[str, str] = {}

    def _node(self, unique_id: str) -> Mapping[str, Any] | None:
        return self._manifest.get("nodes", {}).get(unique_id) or self._manifest.get("sources", {}).get(
            unique_id
        )

    def key(self, unique_id: str) -> str:
        if unique_id in self._keys:
            return self._keys[unique_id]
        node = self._node(unique_id) or {}
        digest = hashlib.sha256(self._global.encode())
        fields = {k: v for k, v in node.items() if k not in _VOLATILE_NODE_FIELDS}
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
        for macro_id in self._logic.macros_used(node):
            digest.update(f"\0{macro_id}\0{self._macros[macro_id].get('macro_sql', '')}".encode())
        for parent_id in node.get("depends_on", {}).get("nodes", []):
            parent = self._node(parent_id) or {}
            digest.update(f"\0{parent_id}={parent.get('relation_name')}".encode())
            if parent.get("config", {}).get("materialized") == "ephemeral":
                # An ephemeral parent is compiled into this model's SQL as a CTE.
                digest.update(self.key(parent_id).encode())
        self._keys[unique_id] = digest.hexdigest()
        return self._keys[unique_id]


def read_cache(state_dir: Path) -> dict[str, Any]:
    """The compiled-SQL cache in `state_dir` (empty if missing or unreadable)."""
    path = state_dir / CACHE_FILE
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if cache.get("format") == CACHE_FORMAT else {}


def is_fresh(state_dir: Path, fingerprint: str) -> bool:
    """True when the cache in `state_dir` was compiled from the project at `fingerprint`."""
    return read_cache(state_dir).get("fingerprint") == fingerprint


def models(cache: Mapping[str, Any]) -> dict[str, CompiledModel]:
    """The cached models by unique_id."""
    return {uid: CompiledModel(**entry) for uid, entry in cache.get("models", {}).items()}


def code_version(model: CompiledModel, node: Mapping[str, Any]) -> str | None:
    """The code version from the canonical compiled SQL and the build config; None to fall back."""
    if model.canonical is None:
        return None
    config = node.get("config", {})
    from dagster_autopilot.changes.canonical import fingerprint

    return fingerprint(model.canonical, *(f"{k}={config.get(k)!r}" for k in _LOGIC_CONFIG_KEYS))


@contextmanager
def _compile_guards(tables_exist: bool) -> Iterator[None]:
    """Compiles see the warehouse as empty (or, with `tables_exist`, every relation as a table),
    any query raises `WarehouseNotOpenedError` instead of opening a connection, and a model that
    fails to compile does not stop the others (dbt's compile stops at the first error)."""
    from unittest import mock

    from dbt.adapters.base.impl import BaseAdapter
    from dbt.adapters.contracts.connection import LazyHandle
    from dbt.adapters.contracts.relation import RelationType
    from dbt.task.compile import CompileTask

    def refuse(self: Any, connection: Any) -> Any:
        raise WarehouseNotOpenedError()

    def get_relation(self: Any, database: str, schema: str, identifier: str) -> Any:
        if not tables_exist:
            return None
        return self.Relation.create(
            database=database, schema=schema, identifier=identifier, type=RelationType.Table
        )

    with (
        mock.patch.object(LazyHandle, "resolve", refuse),
        mock.patch.object(BaseAdapter, "get_relation", get_relation),
        mock.patch.object(CompileTask, "raise_on_first_error", lambda self: False),
    ):
        yield


def _compile_args(project: DbtProject, selected: list[str]) -> list[str]:
    target_path = Path(project.project_dir, project.target_path)
    args = [
        "compile",
        # Not `--quiet`: with one model selected, a quiet compile prints its SQL on stdout, which
        # would corrupt the output of `dg list defs --json` and `autopilot explain --json`.
        "--log-level",
        "none",
        "--no-populate-cache",
        "--no-write-json",
        "--indirect-selection",
        "empty",
        "--project-dir",
        str(project.project_dir),
        "--profiles-dir",
        str(project.profiles_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path),
        "--select",
        *selected,
    ]
    if project.profile:
        args += ["--profile", project.profile]
    if project.target:
        args += ["--target", project.target]
    return args


def _compile(
    project: DbtProject, dbt_manifest: Any, fqns: dict[str, str], tables_exist: bool
) -> dict[str, tuple[str | None, str | None]]:
    """unique_id -> (compiled SQL, error) for the models `fqns` names (unique_id -> fqn)."""
    if not fqns:
        return {}
    from dbt.cli.main import dbtRunner

    args = _compile_args(project, [f"fqn:{fqn}" for fqn in fqns.values()])
    with _COMPILE_LOCK, _compile_guards(tables_exist):
        result = dbtRunner(manifest=dbt_manifest).invoke(args, send_anonymous_usage_stats=False)
    compiled: dict[str, tuple[str | None, str | None]] = {}
    for run_result in getattr(result.result, "results", None) or []:
        node = run_result.node
        if node.unique_id not in fqns:
            continue
        if str(run_result.status) == "success":
            compiled[node.unique_id] = (node.compiled_code, None)
        else:
            compiled[node.unique_id] = (None, _reason(str(run_result.message or "")))
    for unique_id in fqns:
        if unique_id not in compiled:
            detail = f": {result.exception}" if result.exception else ""
            compiled[unique_id] = (None, f"{NOT_COMPILED}{detail}".splitlines()[0])
    return compiled


def _failed_as_a_whole(model: CompiledModel) -> bool:
    return (model.reason or "").startswith(NOT_COMPILED)


def _reason(message: str) -> str:
    if INTROSPECTIVE in message:
        return INTROSPECTIVE
    first = next((line.strip() for line in message.splitlines() if line.strip()), "unknown error")
    return f"compile failed: {first}"


def _canonical(sqls: list[str], dialect: str) -> tuple[str | None, str | None]:
    from dagster_autopilot.changes.canonical import canonical_sql, fingerprint

    canonical = [canonical_sql(sql, dialect) for sql in sqls]
    if any(c is None for c in canonical):
        return None, UNPARSEABLE
    return fingerprint(*canonical), None  # type: ignore[arg-type]


def compile_models(
    project: DbtProject, state_dir: Path, fingerprint: str, dbt_manifest: Any = None
) -> dict[str, CompiledModel]:
    """Compiles the models of `project` whose compilation inputs changed; writes the cache.

    `project` must be parsed already (its `manifest.json` written, `dbt parse`); `dbt_manifest`,
    the parse's in-memory manifest when there is one, saves dbt from reading it again.
    `fingerprint` is the parse fingerprint the state is being prepared for.
    """
    manifest = json.loads(Path(project.manifest_path).read_text())
    keys = _Keys(manifest, _global_key(manifest, project))
    previous = models(read_cache(state_dir))
    dialect = sql_dialect(manifest.get("metadata", {}).get("adapter_type"))
    result: dict[str, CompiledModel] = {}
    stale: dict[str, str] = {}
    for unique_id, node in manifest.get("nodes", {}).items():
        if node.get("resource_type") != "model":
            continue
        key = keys.key(unique_id)
        if node.get("language", "sql") != "sql":
            result[unique_id] = CompiledModel(key=key, reason=PYTHON_MODEL)
            continue
        cached = previous.get(unique_id)
        if cached is None or cached.key != key:
            cached = _COMPILED_IN_PROCESS.get(key)
        # A failure of the whole compile is retried on the next preparation; a model's own is not.
        if cached is not None and cached.key == key and not _failed_as_a_whole(cached):
            result[unique_id] = cached
        else:
            stale[unique_id] = ".".join(node["fqn"])
    first_builds = _compile(project, dbt_manifest, stale, tables_exist=False)
    incremental = {
        uid: fqn
        for uid, fqn in stale.items()
        if manifest["nodes"][uid].get("config", {}).get("materialized") == "incremental"
        and first_builds[uid][0] is not None
    }
    incremental_runs = _compile(project, dbt_manifest, incremental, tables_exist=True)
    for unique_id in stale:
        sql, reason = first_builds[unique_id]
        incremental_sql = None
        if unique_id in incremental_runs:
            incremental_sql, reason = incremental_runs[unique_id]
        canonical = None
        if reason is None and sql is not None:
            sqls = [sql] if incremental_sql is None else [sql, incremental_sql]
            canonical, reason = _canonical(sqls, dialect)
        result[unique_id] = CompiledModel(
            key=keys.key(unique_id),
            sql=sql,
            incremental_sql=incremental_sql,
            canonical=canonical,
            reason=reason,
        )
    _COMPILED_IN_PROCESS.update(
        (model.key, model) for model in result.values() if not _failed_as_a_whole(model)
    )
    cache = {
        "format": CACHE_FORMAT,
        "fingerprint": fingerprint,
        "dialect": dialect,
        "models": {uid: asdict(model) for uid, model in sorted(result.items())},
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / f".{CACHE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(cache))
    temporary.replace(state_dir / CACHE_FILE)
    return result
