"""CustomDbtComponent: a dbt project whose every asset keeps itself fresh, as the YAML says."""

import dataclasses
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
from dagster.components.resolved.model import Resolver
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, DbtProjectComponent
from dagster_dbt.components.dbt_project.component import (
    DbtMetadataAddons,
    DbtProjectComponentTranslator,
)

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation.apply import (
    POLICY_METADATA,
    policy_attributes,
    run_tags_metadata,
)
from dagster_autopilot.automation.policy import (
    AutomationPolicy,
    MaterializationPolicies,
    PolicyRule,
    resolve_policy,
)
from dagster_autopilot.changes.affected import with_change_metadata
from dagster_autopilot.changes.project import ProjectShapes
from dagster_autopilot.changes.project import register as register_shape
from dagster_autopilot.components.schema_errors import ClearSchemaErrors
from dagster_autopilot.dbt import compiled as dbt_compiled
from dagster_autopilot.dbt import dev_reload, materialization_metadata
from dagster_autopilot.dbt import nodes as dbt_nodes
from dagster_autopilot.dbt import parse_cache as dbt_parse_cache
from dagster_autopilot.dbt.code_versions import LogicCodeVersions
from dagster_autopilot.warehouse.connection import (
    ensure_warehouse_usable,
    use_project_warehouse_by_default,
)

# Every dbt asset carries its materialization under this tag, so selections such as
# `tag:dagster/materialization=table` follow the real config rather than folder names.
MATERIALIZATION_TAG = "dagster/materialization"

# The run tag the production run queue limits to one run per value (deploy/dagster.yaml).
DBT_PROJECT_RUN_TAG = "autopilot/dbt_project"

# Asset metadata: where a dbt asset's code version comes from, e.g. "compiled SQL" or
# "logic hash (introspective query: ...)".
CODE_VERSION_METADATA = "autopilot/code_version"

logger = logging.getLogger(__name__)

# Where Dagster reads an asset's links to its source files.
CODE_REFERENCES_METADATA = "dagster/code_references"

# Dagster's tags for an asset's kinds; a spec built from another's tags gets them from its kinds.
_KIND_TAG_PREFIX = "dagster/kind/"


def _without_kind_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if not key.startswith(_KIND_TAG_PREFIX)}


class _MemoizedTranslator(DbtProjectComponentTranslator):
    """dagster-dbt's component translator, answering each node once per manifest.

    dagster-dbt asks for the spec of every parent of every node (33,000 asks for 5,000 models),
    and its component translator builds a new AssetSpec on every ask; a node's spec does not
    change within one manifest.
    """

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        memo = self.__dict__.setdefault("_spec_memo", {})
        key = (id(manifest), unique_id, id(project))
        spec = memo.get(key)
        if spec is None:
            spec = memo[key] = super().get_asset_spec(manifest, unique_id, project)
        return spec


@dataclass
class CustomDbtComponent(ClearSchemaErrors, DbtProjectComponent):
    """A dbt project whose assets refresh themselves, each by the policy of its materialization.

    Every asset is tagged `dagster/materialization=<seed|view|table|incremental|...>`. By default
    seeds and views are rebuilt as soon as they are stale (missing, code changed, upstream updated),
    and tables and incremental models at the first tick after 06:00 UTC when stale. Override per
    materialization with `policies`, per dbt tag or fqn with `rules`, and per model with
    `meta: {dagster: {automation: {...}}}` in dbt. Views are Dagster virtual assets: they store no
    data, so their children count an update of the data behind them as their own parent's.
    """

    # Passed through as validated pydantic models, so their validators (cron, timezone, unknown
    # keys) run while `dg check defs` reads the YAML and report the field's path.
    policies: Annotated[MaterializationPolicies, Resolver.passthrough()] = field(
        default_factory=MaterializationPolicies
    )
    """The policy for each dbt materialization, e.g. `table: {cron: "0 */4 * * *"}` or `view: none`."""

    rules: Annotated[list[PolicyRule], Resolver.passthrough()] = field(default_factory=list)
    """Overrides by dbt tag or fqn glob, applied in order after `policies`, before dbt `meta`."""

    code_versions: Literal["compiled", "logic", "literal"] = "compiled"
    """What a model's code version (and so its rebuild after an edit) follows.
    `compiled`: the model's compiled SQL, put in a canonical form by sqlglot in the target's
    dialect, plus its build config (materialization, incremental strategy, unique key, ...). A
    changed var, environment variable, macro, source or ref target changes it; formatting,
    comments, keyword case and identifier quoting do not. A model that cannot be compiled without
    the warehouse (`run_query`, ...) or whose SQL sqlglot cannot parse uses `logic` instead, and
    its `autopilot/code_version` metadata says why.
    `logic`: the model's SQL text without comments and whitespace, its config, and the macros it
    calls (not vars or environment variables).
    `literal`: dagster-dbt's hash of the raw SQL text."""

    change_detection: Literal["columns", "code_version"] = "columns"
    """What a model's code change rebuilds downstream.
    `columns`: only the children that read a column the change affects (an added column rebuilds
    no child that lists its columns; a changed expression rebuilds the children reading that
    column; a changed filter, join or grouping every child). Needs `code_versions: compiled`; what
    cannot be analyzed counts as changing every column. See "What a change rebuilds" in the README.
    `code_version`: every child, as any code change did before column awareness."""

    reuse_parse: bool = True
    """Skip `dbt parse` when no file of the dbt project (nor the dbt version, target, or an
    environment variable it reads) changed since the last parse. `false` parses on every load."""

    reload_on_save: bool = True
    """In `dg dev`, reload the code location when a file of the dbt project is saved, so an edit
    reaches the automation without a manual "Reload definitions"."""

    include_metadata: Annotated[
        list[DbtMetadataAddons], Resolver.default(examples=[[], ["row_count"]])
    ] = field(default_factory=lambda: list(materialization_metadata.WAREHOUSE_METADATA))
    """dagster-dbt's metadata fetched after each model builds. By default `column_metadata` (the
    columns and types the warehouse holds) and `row_count` (tables only); `[]` fetches neither.
    Column lineage (`dagster/column_lineage`) comes from the library's own column analysis (the
    one `change_detection: columns` uses, with `code_versions: compiled`), whatever this says."""

    @classmethod
    def load(cls, attributes: Any, context: dg.ComponentLoadContext) -> "CustomDbtComponent":
        # dbt's profile reads the DuckDB path from the environment. Every `dg` command that loads
        # this component (`dg utils refresh-defs-state` among them, which does not import
        # definitions.py) gets the project's default warehouse unless the variable is set.
        use_project_warehouse_by_default(context.project_root)
        return super().load(attributes, context)

    @cached_property
    def translator(self) -> DagsterDbtTranslator:
        # dagster-dbt's code references point into the copy of the project the state is prepared
        # from; `get_asset_spec` links the user's own files instead (`_code_reference`).
        settings = self.translation_settings
        if self._links_to_source:
            settings = dataclasses.replace(settings, enable_code_references=False)
        return _MemoizedTranslator(self, settings)

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        """dagster-dbt's spec with ours added in one step: each step builds a new AssetSpec."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = self.get_resource_props(manifest, unique_id)
        replaced: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        if node.get("resource_type") in ("model", "seed", "snapshot"):
            materialization = dbt_nodes.materialization(node)
            policy = policy_attributes(self._policy_for(node))
            # A view stores no data: its children look through it to the data behind it
            # (`UPSTREAM_UPDATED` in automation/conditions.py).
            replaced.update(
                code_version=self._code_version_for(manifest, node, spec.code_version),
                is_virtual=materialization == "view",
                automation_condition=policy.automation_condition,
                tags={
                    **_without_kind_tags(spec.tags),
                    MATERIALIZATION_TAG: materialization,
                    **policy.tags,
                },
            )
            # One dbt run per project at a time in production (a tag limit in deploy/dagster.yaml).
            project_name = manifest["metadata"]["project_name"]
            metadata.update(run_tags_metadata({DBT_PROJECT_RUN_TAG: project_name}))
            metadata.update(policy.metadata)
            source = self._code_version_sources(manifest).get(unique_id)
            if source is not None:
                metadata[CODE_VERSION_METADATA] = source
                if source.startswith("logic hash ("):
                    # A fallback is told in the policy text too.
                    metadata[POLICY_METADATA] = (
                        f"{metadata[POLICY_METADATA]}; code version from the {source}"
                    )
        if self._links_to_source and "original_file_path" in node:
            metadata[CODE_REFERENCES_METADATA] = self._code_reference(spec.metadata, node)
        if self._column_aware:
            # The automation and the runs find the model's column shape through this metadata.
            metadata.update(register_shape(self._project_shapes(manifest), spec.key, unique_id))
        if not replaced and not metadata:
            return spec
        with warnings.catch_warnings():
            # Virtual assets are a preview in 1.13; one warning per view would bury dg's output.
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return spec.replace_attributes(**replaced, metadata={**spec.metadata, **metadata})

    @property
    def _links_to_source(self) -> bool:
        return self.translation_settings is not None and self.translation_settings.enable_code_references

    @cached_property
    def _source_dir(self) -> Path:
        return Path(self.dbt_project.project_dir).resolve()

    def _code_reference(
        self, metadata: Mapping[str, Any], node: Mapping[str, Any]
    ) -> dg.CodeReferencesMetadataValue:
        """The node's file in the user's dbt project (the UI's "open in editor" link): an edit of
        the prepared copy, where dagster-dbt's link points, is overwritten by the next parse."""
        existing = metadata.get(CODE_REFERENCES_METADATA)
        references = list(existing.code_references) if existing is not None else []
        path = self._source_dir / node["original_file_path"]
        references.append(dg.LocalFileCodeReference(file_path=str(path)))
        return dg.CodeReferencesMetadataValue(code_references=references)

    @property
    def _column_aware(self) -> bool:
        return self.change_detection == "columns" and self.code_versions == "compiled"

    def _project_shapes(self, manifest: Mapping[str, Any]) -> ProjectShapes:
        # One per parsed manifest: shapes are computed on demand and kept with it.
        cached = self.__dict__.get("_shapes_cache")
        if cached is None or cached[0] is not manifest:
            shapes = ProjectShapes(
                manifest,
                compiled_sql=lambda unique_id: self.compiled_sql_for(manifest, unique_id),
                dialect=self.sql_dialect(manifest),
                project_dir=Path(self.dbt_project.project_dir),
            )
            cached = (manifest, shapes)
            object.__setattr__(self, "_shapes_cache", cached)
        return cached[1]

    def _parse_inputs(self) -> list[Path]:
        project = self.dbt_project
        directories = [Path(project.project_dir)]
        if project.profiles_dir and Path(project.profiles_dir) != directories[0]:
            directories.append(Path(project.profiles_dir))
        return directories

    def _fingerprint(self) -> str:
        return dbt_parse_cache.project_fingerprint(*self._parse_inputs())

    def write_state_to_path(self, state_path: Path) -> None:
        """Prepares the project (copy + `dbt parse`) unless nothing it depends on has changed."""
        project = self.dbt_project
        # In `dg dev`, the replaced code server may still be parsing the edit that reloaded us.
        dbt_parse_cache.wait_for_refresh(state_path)
        fingerprint = self._fingerprint()
        # Where the prepared copy's manifest lives; the copy itself may not exist yet.
        copy_dir = internals.dbt_project_copy_dir(self, state_path)
        manifest = copy_dir / Path(project.manifest_path).relative_to(project.project_dir)
        compiled_fresh = self.code_versions != "compiled" or dbt_compiled.is_fresh(
            state_path.parent, fingerprint
        )
        if (
            self.reuse_parse
            and compiled_fresh
            and dbt_parse_cache.is_fresh(state_path, fingerprint, manifest)
        ):
            state_path.touch()
            return
        if self.code_versions == "compiled" and dbt_parse_cache.parses_in_process(project):
            # The compile needs dbt in this process: parsing here too spares a `dbt` process
            # (seconds of imports), and the compile reuses the parse's in-memory manifest.
            dbt_parse_cache.refresh_state(
                project, state_path, copy_dir, fingerprint, after_parse=self._after_parse(state_path)
            )
            return
        super().write_state_to_path(state_path)
        self._compile(None, fingerprint, state_path)
        dbt_parse_cache.remember(state_path, fingerprint)

    def _warm_up(self) -> None:
        if self.code_versions == "compiled":
            dbt_compiled.warm_up()
        else:
            dbt_parse_cache.warm_up()

    def _after_parse(self, state_path: Path) -> dbt_parse_cache.AfterParse:
        return lambda dbt_manifest, fingerprint: self._compile(dbt_manifest, fingerprint, state_path)

    def _compile(self, dbt_manifest: Any, fingerprint: str, state_path: Path) -> None:
        """Compiles the models whose inputs changed into the state's cache (`dbt/compiled.py`)."""
        if self.code_versions != "compiled":
            return
        try:
            dbt_compiled.compile_models(self.dbt_project, state_path.parent, fingerprint, dbt_manifest)
        except Exception:
            # The load goes on: without a cache for this state, every model falls back to the
            # logic hash, and its `autopilot/code_version` metadata says so.
            logger.warning("dbt models could not be compiled for code versions", exc_info=True)

    def build_defs_from_state(
        self, context: dg.ComponentLoadContext, state_path: Path | None
    ) -> dg.Definitions:
        # Where `_code_version_for` and `compiled_sql_for` find the compiled SQL of this state.
        object.__setattr__(self, "_compiled_state_path", state_path)
        defs = super().build_defs_from_state(context, state_path)
        if self.reload_on_save:
            loaded = dbt_parse_cache.remembered(state_path) if state_path else None
            # The watcher parses in this process, where dbt is warm, before asking for the
            # reload, so that the reloaded code server finds the state fresh and skips the parse.
            refresh = None
            if state_path is not None and self.reuse_parse:
                copy_dir = internals.dbt_project_copy_dir(self, state_path)
                refresh = dbt_parse_cache.refresher(
                    self.dbt_project,
                    state_path,
                    copy_dir,
                    after_parse=self._after_parse(state_path),
                )
            dev_reload.watch_in_dev(
                self._parse_inputs(),
                self._fingerprint,
                loaded,
                refresh=refresh,
                warm_up=self._warm_up if refresh else None,
            )
        return defs

    def execute(self, context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator:
        # dbt retries every error opening the warehouse, a damaged file's too, for minutes: fail
        # at once with one error that names the file.
        ensure_warehouse_usable()
        invocation = dbt.cli(self.get_cli_args(context), context=context)
        with materialization_metadata.fetching():
            for event in materialization_metadata.dbt_events(invocation, self.include_metadata):
                event = materialization_metadata.with_materialization_metadata(context, event)
                yield with_change_metadata(context, event)

    def get_cli_args(self, context: dg.AssetExecutionContext) -> list[str]:
        args = super().get_cli_args(context)
        if any(str(arg).startswith("--indirect-selection") for arg in args):
            return args
        # Automation builds subsets. dbt's default (eager) would also run a relationships test whose
        # other parent is not in the subset, and fail on a table that does not exist yet.
        return [*args, "--indirect-selection", "cautious"]

    def _policy_for(self, node: Mapping[str, Any]) -> AutomationPolicy:
        return resolve_policy(
            materialized=dbt_nodes.materialization(node),
            tags=node.get("tags", []),
            fqn=node.get("fqn", []),
            meta_policy=dbt_nodes.meta_policy(node),
            defaults=self.policies,
            rules=self.rules,
        )

    def _code_version_for(
        self, manifest: Mapping[str, Any], node: Mapping[str, Any], literal: str | None
    ) -> str | None:
        if self.code_versions == "literal":
            return literal
        if self.code_versions == "logic" or node.get("resource_type") != "model":
            return self._code_versions(manifest).version(node)
        model = self._compiled_models(manifest).get(node["unique_id"])
        if model is None:
            reason = "not compiled: no prepared state holds its compiled SQL"
        else:
            version = dbt_compiled.code_version(model, node)
            if version is not None:
                self._code_version_sources(manifest)[node["unique_id"]] = dbt_compiled.COMPILED
                return version
            reason = model.reason or "unknown"
        self._code_version_sources(manifest)[node["unique_id"]] = f"logic hash ({reason})"
        return self._code_versions(manifest).version(node)

    def _code_version_sources(self, manifest: Mapping[str, Any]) -> dict[str, str]:
        """unique_id -> where its code version came from, for the models of `manifest`."""
        cached = self.__dict__.get("_code_version_source_cache")
        if cached is None or cached[0] is not manifest:
            cached = (manifest, {})
            object.__setattr__(self, "_code_version_source_cache", cached)
        return cached[1]

    def _compiled_models(self, manifest: Mapping[str, Any]) -> dict[str, dbt_compiled.CompiledModel]:
        # Read once per parsed manifest, from the state folder `build_defs_from_state` was given.
        cached = self.__dict__.get("_compiled_cache")
        if cached is None or cached[0] is not manifest:
            state_path = self.__dict__.get("_compiled_state_path")
            cache = dbt_compiled.read_cache(state_path.parent) if state_path else {}
            # Only a cache compiled for the very state being loaded: a failed compile leaves the
            # previous one behind.
            if cache and cache.get("fingerprint") != dbt_parse_cache.remembered(state_path):
                cache = {}
            cached = (manifest, dbt_compiled.models(cache))
            object.__setattr__(self, "_compiled_cache", cached)
        return cached[1]

    def compiled_sql_for(self, manifest: Mapping[str, Any], unique_id: str) -> str | None:
        """The compiled SQL of a model's first build (the table does not exist yet), as compiled
        while the state was prepared, or None when it could not be compiled (see
        `autopilot/code_version`) or the component does not use `code_versions: compiled`."""
        model = self._compiled_models(manifest).get(unique_id)
        return model.sql if model is not None else None

    def sql_dialect(self, manifest: Mapping[str, Any]) -> str:
        """The sqlglot dialect of the manifest's dbt target (`duckdb`, `postgres`, ...)."""
        return dbt_compiled.sql_dialect(manifest.get("metadata", {}).get("adapter_type"))

    def _code_versions(self, manifest: Mapping[str, Any]) -> LogicCodeVersions:
        # Built once per parsed manifest and shared by all of its nodes.
        cached = getattr(self, "_code_versions_cache", None)
        if cached is None or cached[0] is not manifest:
            cached = (manifest, LogicCodeVersions(manifest))
            object.__setattr__(self, "_code_versions_cache", cached)
        return cached[1]
