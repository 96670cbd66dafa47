"""Column lineage of a compiled model query, and what a change to it means for its children.

`analyze` reads one compiled query (sqlglot, in the target's dialect) and keeps, per output column,
a fingerprint of its expression resolved through CTEs and subqueries down to the parents' columns,
and one fingerprint of everything that decides which rows exist. `categorize` compares two of those
shapes; `affected_outputs` and `reads_any` tell which children can see a parent's change.

Everything here fails safe: what the analysis cannot prove becomes "every column" (`ALL`), an
unknown column list (`columns=None`) or the `unknown` category, never a missing read.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, ScopeType, build_scope
from sqlglot.schema import MappingSchema

from dagster_autopilot.changes.canonical import fingerprint, parse

ALL: Final = "*"
"""Every column."""

Columns = frozenset[str] | Literal["*"]

Category = Literal["metadata_only", "non_breaking", "breaking", "unknown"]

# Placeholder table names that stand for the parents while sqlglot qualifies the query: one level
# deep, so parents named with one, two or three parts share one schema mapping.
_PLACEHOLDER = "__autopilot_relation_{}"

_STAR_META = "autopilot_star_sources"

# Functions that can return several rows per input row when they appear in a select list.
_SET_RETURNING_HINTS = (
    "unnest",
    "series",
    "subscripts",
    "elements",
    "each",
    "to_table",
    "explode",
    "keys",
    "matches",
)
_SET_RETURNING_TYPES: tuple[type[exp.Expression], ...] = (exp.UDTF, exp.Unnest, exp.GenerateSeries)


def relation_key(relation: str | exp.Table, dialect: str) -> str:
    """Normalized key of a table reference: the dialect's identifier case, parts joined by dots.

    `"analytics"."main"."stg_orders"` and `analytics.main.STG_ORDERS` give `analytics.main.stg_orders`
    on DuckDB; on PostgreSQL a quoted `"Orders"` keeps its case.
    """
    if isinstance(relation, str):
        try:
            table = exp.to_table(relation, dialect=dialect)
        except SqlglotError:
            return relation.strip()
    else:
        table = relation.copy()
        table.set("alias", None)
    table = normalize_identifiers(table, dialect=dialect)
    parts = [part.name for part in table.parts]
    return ".".join(parts) if all(parts) else table.sql(dialect=dialect)


@dataclass(frozen=True)
class ModelShape:
    """What one compiled query computes, as far as its children and its next version care."""

    columns: tuple[str, ...] | None
    column_fingerprints: Mapping[str, str]
    structure_fingerprint: str
    column_sources: Mapping[str, Mapping[str, frozenset[str]]]
    structural_sources: Mapping[str, frozenset[str]]
    reads: Mapping[str, Columns] = field(default_factory=dict)
    # Parents whose every column reaches the output through a `*`, including columns added later.
    star_relations: frozenset[str] = frozenset()

    def to_metadata(self) -> dict:
        """A JSON-able form (lists and strings), read back by `from_metadata`."""
        return {
            "columns": None if self.columns is None else list(self.columns),
            "column_fingerprints": dict(sorted(self.column_fingerprints.items())),
            "structure_fingerprint": self.structure_fingerprint,
            "column_sources": {
                column: {relation: sorted(cols) for relation, cols in sorted(sources.items())}
                for column, sources in sorted(self.column_sources.items())
            },
            "structural_sources": {
                relation: sorted(cols) for relation, cols in sorted(self.structural_sources.items())
            },
            "reads": {
                relation: ALL if cols == ALL else sorted(cols)
                for relation, cols in sorted(self.reads.items())
            },
            "star_relations": sorted(self.star_relations),
        }

    @classmethod
    def from_metadata(cls, data: Mapping) -> "ModelShape":
        columns = data.get("columns")
        return cls(
            columns=None if columns is None else tuple(columns),
            column_fingerprints=dict(data.get("column_fingerprints", {})),
            structure_fingerprint=data["structure_fingerprint"],
            column_sources={
                column: {relation: frozenset(cols) for relation, cols in sources.items()}
                for column, sources in data.get("column_sources", {}).items()
            },
            structural_sources={
                relation: frozenset(cols)
                for relation, cols in data.get("structural_sources", {}).items()
            },
            reads={
                relation: ALL if cols == ALL else frozenset(cols)
                for relation, cols in data.get("reads", {}).items()
            },
            star_relations=frozenset(data.get("star_relations", ())),
        )


@dataclass(frozen=True)
class Change:
    """The category of a model's code change and the output columns it affects."""

    category: Category
    columns: Columns


class _Unprovable(Exception):
    """The query uses something the lineage cannot follow; the shape becomes opaque."""


_Deps = dict[str, set[str]]


def _merge(into: _Deps, other: Mapping[str, set[str] | frozenset[str]]) -> None:
    for relation, cols in other.items():
        into.setdefault(relation, set()).update(cols)


class _Lineage:
    """Fingerprints and base columns of one qualified query, memoized per scope and column."""

    def __init__(self, root: Scope, relations: Mapping[str, str]):
        self.root = root
        self.relations = relations  # placeholder table name -> relation key
        self.scopes = {id(scope.expression): scope for scope in root.traverse()}
        self._outputs: dict[tuple[int, str], tuple[str, _Deps]] = {}
        self._structures: dict[int, tuple[str, _Deps]] = {}
        self._full: dict[int, tuple[str, _Deps]] = {}

    # Output columns of a scope ----------------------------------------------------------------

    def output_names(self, scope: Scope) -> list[str]:
        expression = scope.expression
        if isinstance(expression, exp.SetOperation):
            return self.output_names(scope.set_operation_scopes[0])
        if not isinstance(expression, exp.Select):
            raise _Unprovable(f"unsupported scope {expression.key}")
        names = []
        for projection in expression.expressions:
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                raise _Unprovable("select * of a relation with unknown columns")
            names.append(projection.alias_or_name)
        if len(set(names)) != len(names):
            raise _Unprovable("duplicate output column names")
        return names

    def output(self, scope: Scope, name: str) -> tuple[str, _Deps]:
        """Fingerprint and base columns of output column `name` of `scope`."""
        key = (id(scope), name)
        if key not in self._outputs:
            self._outputs[key] = self._output(scope, name)
        return self._outputs[key]

    def _output(self, scope: Scope, name: str) -> tuple[str, _Deps]:
        expression = scope.expression
        if isinstance(expression, exp.SetOperation):
            if expression.args.get("by_name"):
                raise _Unprovable("set operation by name")
            names = self.output_names(scope)
            if name not in names:
                raise _Unprovable(f"no column {name} in set operation")
            index = names.index(name)
            deps: _Deps = {}
            parts = []
            for branch in scope.set_operation_scopes:
                branch_names = self.output_names(branch)
                if index >= len(branch_names):
                    raise _Unprovable("set operation branches differ in width")
                branch_key, branch_deps = self.output(branch, branch_names[index])
                parts.append(branch_key)
                _merge(deps, branch_deps)
            return fingerprint(expression.key, *parts), deps
        if not isinstance(expression, exp.Select):
            raise _Unprovable(f"unsupported scope {expression.key}")
        matches = [p for p in expression.expressions if p.alias_or_name == name and not p.is_star]
        if len(matches) == 1:
            return self.expression(scope, matches[0].unalias())
        if len(matches) > 1:
            raise _Unprovable(f"column {name} defined twice")
        # An unexpanded `*` over one source passes that source's columns through by name.
        stars = [p for p in expression.expressions if p.is_star]
        if len(stars) == 1 and len(scope.selected_sources) == 1:
            ((_, source),) = scope.selected_sources.values()
            return self.source_column(source, name)
        raise _Unprovable(f"column {name} not found")

    def source_column(self, source: exp.Table | Scope, name: str) -> tuple[str, _Deps]:
        if isinstance(source, Scope):
            return self.output(source, name)
        relation = self.relation_of(source)
        return f"{relation}:{name}", {relation: {name}}

    def relation_of(self, table: exp.Table) -> str:
        if not isinstance(table.this, exp.Identifier) or table.name not in self.relations:
            raise _Unprovable("table function or unknown table")
        return self.relations[table.name]

    def star_relations(self, scope: Scope) -> set[str]:
        """The parents whose every column a `*` passes through to the output of `scope`."""
        expression = scope.expression
        if isinstance(expression, exp.SetOperation):
            return set().union(*(self.star_relations(branch) for branch in scope.set_operation_scopes))
        relations: set[str] = set()
        for name in expression.meta.get(_STAR_META, ()):
            source = scope.sources.get(name)
            if source is None:
                raise _Unprovable(f"star over unknown source {name}")
            if isinstance(source, Scope):
                relations |= self.star_relations(source)
            else:
                relations.add(self.relation_of(source))
        return relations

    # Expressions ------------------------------------------------------------------------------

    def expression(self, scope: Scope, node: exp.Expression) -> tuple[str, _Deps]:
        """Fingerprint of an expression of `scope` with every column resolved to its definition."""
        deps: _Deps = {}
        text = self._serialize(scope, node, deps)
        return fingerprint(text), deps

    def _serialize(self, scope: Scope, node: object, deps: _Deps) -> str:
        if isinstance(node, list):
            return "[" + ",".join(self._serialize(scope, item, deps) for item in node) + "]"
        if not isinstance(node, exp.Expression):
            return repr(node)
        if isinstance(node, exp.RawString):
            # A dollar-quoted string is the same value as the quoted one.
            node = exp.Literal.string(node.name)
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            key, column_deps = self.column(scope, node)
            _merge(deps, column_deps)
            return f"col({key})"
        nested = self.scopes.get(id(node))
        if nested is not None and nested is not scope:
            if nested.scope_type in (ScopeType.DERIVED_TABLE, ScopeType.CTE):
                # Rows of a derived table; the columns read from it are resolved where they are used.
                key, nested_deps = self.structure(nested)
            else:
                key, nested_deps = self.full(nested)
            _merge(deps, nested_deps)
            return f"scope({key})"
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            source = scope.sources.get(node.alias_or_name)
            if isinstance(source, Scope):
                key, nested_deps = self.structure(source)
                _merge(deps, nested_deps)
                target = f"scope({key})"
            else:
                relation = self.relation_of(node)
                deps.setdefault(relation, set())
                target = f"table({relation})"
            # Whatever else hangs on the table (sample, time travel, pivots) changes its rows.
            extra = {
                arg: value
                for arg, value in node.args.items()
                if arg not in ("this", "db", "catalog", "alias") and value not in (None, False, [])
            }
            if extra:
                target += self._serialize(scope, [f"{arg}" for arg in sorted(extra)], deps)
                target += self._serialize(scope, [extra[arg] for arg in sorted(extra)], deps)
            return target
        if isinstance(node, exp.TableAlias):
            if node.args.get("columns"):
                raise _Unprovable("column list on an alias")
            return "alias"
        return _serialize_args(node, lambda value: self._serialize(scope, value, deps))

    def column(self, scope: Scope, column: exp.Column) -> tuple[str, _Deps]:
        name = column.name
        table = column.table
        if not table:
            if _is_lambda_parameter(column):
                return f"lambda:{name}", {}
            select = scope.expression
            clause = column.find_ancestor(
                exp.Order, exp.Group, exp.Having, exp.Qualify, exp.Window, exp.Query
            )
            if (
                isinstance(select, exp.Select)
                and isinstance(clause, (exp.Order, exp.Group, exp.Having, exp.Qualify))
                and clause.parent is select
                and name in select.named_selects
            ):
                # A reference to a projection alias in ORDER BY / GROUP BY / HAVING / QUALIFY.
                return self.output(scope, name)
            if (
                isinstance(select, exp.SetOperation)
                and isinstance(clause, exp.Order)
                and clause.parent is select
            ):
                # ORDER BY of a set operation names its output columns.
                return self.output(scope, name)
            candidates = [
                source for _, source in scope.selected_sources.values() if self._may_have(source, name)
            ]
            if len(candidates) != 1:
                raise _Unprovable(f"column {name} cannot be attributed to one source")
            return self.source_column(candidates[0], name)
        current: Scope | None = scope
        while current is not None:
            source = current.sources.get(table)
            if source is not None:
                return self.source_column(source, name)
            current = current.parent
        raise _Unprovable(f"source {table} not found")

    def _may_have(self, source: exp.Table | Scope, name: str) -> bool:
        if not isinstance(source, Scope):
            return True
        try:
            return name in self.output_names(source)
        except _Unprovable:
            return True

    # Structure ----------------------------------------------------------------------------------

    def structure(self, scope: Scope) -> tuple[str, _Deps]:
        """Fingerprint of what decides the rows of `scope`, and the base columns that reach it."""
        if id(scope) not in self._structures:
            self._structures[id(scope)] = self._structure(scope)
        return self._structures[id(scope)]

    def _structure(self, scope: Scope) -> tuple[str, _Deps]:
        expression = scope.expression
        deps: _Deps = {}
        parts: list[str] = [expression.key]
        if isinstance(expression, exp.SetOperation):
            if expression.args.get("by_name"):
                raise _Unprovable("set operation by name")
            for arg in ("distinct", "side", "kind", "on", "order", "limit", "offset"):
                value = expression.args.get(arg)
                if value is not None and value is not False:
                    parts.append(f"{arg}={self._serialize(scope, value, deps)}")
            compares_rows = bool(expression.args.get("distinct")) or not isinstance(
                expression, exp.Union
            )
            for branch in scope.set_operation_scopes:
                key, branch_deps = self.structure(branch)
                parts.append(key)
                _merge(deps, branch_deps)
                if compares_rows:
                    key, branch_deps = self._all_columns(branch)
                    parts.append(key)
                    _merge(deps, branch_deps)
            return fingerprint(*parts), deps
        if not isinstance(expression, exp.Select):
            raise _Unprovable(f"unsupported scope {expression.key}")
        for arg, value in sorted(expression.args.items()):
            if arg in ("expressions", "with_", "with") or value is None or value is False or value == []:
                continue
            parts.append(f"{arg}={self._serialize(scope, value, deps)}")
        group = expression.args.get("group")
        distinct = expression.args.get("distinct")
        aggregated = not group and any(_has_aggregate(expression, p) for p in expression.expressions)
        parts.append(f"aggregated={aggregated}")
        # Plain DISTINCT compares whole rows; DISTINCT ON compares only its own expressions,
        # which are serialized above with the ORDER BY that picks the surviving row.
        compares_rows = bool(distinct) and not distinct.args.get("on")
        for projection in expression.expressions:
            if compares_rows or _returns_sets(projection):
                if projection.is_star:
                    raise _Unprovable("distinct over a relation with unknown columns")
                key, projection_deps = self.output(scope, projection.alias_or_name)
                parts.append(f"rows:{projection.alias_or_name}={key}")
                _merge(deps, projection_deps)
        return fingerprint(*parts), deps

    def _all_columns(self, scope: Scope) -> tuple[str, _Deps]:
        deps: _Deps = {}
        keys = []
        for name in self.output_names(scope):
            key, column_deps = self.output(scope, name)
            keys.append(key)
            _merge(deps, column_deps)
        return fingerprint(*keys), deps

    def full(self, scope: Scope) -> tuple[str, _Deps]:
        """Everything a subquery contributes: its rows and all of its columns."""
        if id(scope) not in self._full:
            structure, deps = self.structure(scope)
            columns, column_deps = self._all_columns(scope)
            merged: _Deps = {}
            _merge(merged, deps)
            _merge(merged, column_deps)
            self._full[id(scope)] = (fingerprint(structure, columns), merged)
        return self._full[id(scope)]


def _is_lambda_parameter(column: exp.Column) -> bool:
    lam = column.find_ancestor(exp.Lambda)
    while lam is not None:
        if any(isinstance(p, exp.Expression) and p.name == column.name for p in lam.expressions):
            return True
        lam = lam.find_ancestor(exp.Lambda)
    return False


def _has_aggregate(select: exp.Select, projection: exp.Expression) -> bool:
    """Whether `projection` aggregates the rows of `select` (outside any window or subquery)."""
    return any(
        node.find_ancestor(exp.Window, exp.Query) is select for node in projection.find_all(exp.AggFunc)
    )


def _returns_sets(projection: exp.Expression) -> bool:
    if projection.find(*_SET_RETURNING_TYPES):
        return True
    return any(
        any(hint in node.name.lower() for hint in _SET_RETURNING_HINTS)
        for node in projection.find_all(exp.Anonymous)
    )


def _check_followable(tree: exp.Expression) -> None:
    """Refuse what hides which columns a query reads: stars left unexpanded, recursion, COLUMNS()."""
    for node in tree.find_all(exp.Star, exp.Columns, exp.With):
        if isinstance(node, exp.With):
            if node.args.get("recursive"):
                raise _Unprovable("recursive CTE")
        elif isinstance(node, exp.Columns):
            raise _Unprovable("COLUMNS() expression")
        else:
            star = node.parent if isinstance(node.parent, exp.Column) else node
            if isinstance(star.parent, exp.Count) or (
                isinstance(star.parent, exp.Select) and star.arg_key == "expressions"
            ):
                # `count(*)` counts rows; a projected `*` over a relation with unknown columns
                # passes through only the columns that are named downstream (or makes the
                # output unknown).
                continue
            # Any other `*` (`hash(*)`, `struct_pack(t.*)`, ...) reads columns no one lists.
            raise _Unprovable("unexpanded *")


def _mark_stars(scope: Scope) -> None:
    """Remember, on the select itself, which sources a `*` projection covers before it is expanded."""
    select = scope.expression
    if not isinstance(select, exp.Select):
        return
    covered: list[str] = []
    for projection in select.expressions:
        if isinstance(projection, exp.Star):
            covered.extend(scope.selected_sources)
        elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
            covered.append(projection.table)
    if covered:
        select.meta[_STAR_META] = covered


def _column_name(name: str, dialect: str) -> str:
    return normalize_identifiers(exp.to_identifier(name, quoted=True), dialect=dialect).name


def _serialize_raw(node: object, relations: Mapping[str, str]) -> str:
    """Every detail of a qualified tree except quoting and comments, parents named by their keys."""
    if isinstance(node, list):
        return "[" + ",".join(_serialize_raw(item, relations) for item in node) + "]"
    if not isinstance(node, exp.Expression):
        return repr(node)
    if isinstance(node, exp.RawString):
        node = exp.Literal.string(node.name)
    if isinstance(node, exp.Table) and node.name in relations:
        return f"table({relations[node.name]})"
    return _serialize_args(node, lambda value: _serialize_raw(value, relations))


def _serialize_args(node: exp.Expression, serialize: Callable[[object], str]) -> str:
    """`node` as `key(arg=value,...)` over its set arguments, each serialized by `serialize`;
    identifier quoting left out, names of unknown functions in lower case."""
    parts = []
    for arg, value in sorted(node.args.items()):
        if value is None or value is False or value == []:
            continue
        if isinstance(node, exp.Identifier) and arg == "quoted":
            continue
        if isinstance(node, exp.Anonymous) and arg == "this" and isinstance(value, str):
            value = value.lower()
        parts.append(f"{arg}={serialize(value)}")
    return f"{node.key}(" + ",".join(parts) + ")"


def analyze(sql: str, dialect: str, schema: Mapping[str, Sequence[str]]) -> ModelShape | None:
    """The shape of one compiled query, or None when sqlglot cannot parse or qualify it.

    `schema` maps a parent's `relation_key` to its complete, current column list (a parent's own
    `ModelShape.columns` is one); it expands `select *` and attributes unqualified columns. A parent
    without an entry, or with an empty list, counts as unknown: fine as long as the query names
    the columns it reads, opaque (`columns=None`, reads `ALL`) where a `*` over it reaches the output.
    """
    tree = parse(sql, dialect)
    if tree is None or not isinstance(tree, exp.Query):
        return None
    known: dict[str, Sequence[str]] = {}
    for key, cols in schema.items():
        if not cols:
            # Documented columns can be none of the real ones; an empty list proves nothing.
            continue
        known.setdefault(relation_key(key, dialect), cols)
        known[key] = cols
    try:
        scope = build_scope(tree)
        if scope is None:
            return None
        relations: dict[str, str] = {}
        by_key: dict[str, str] = {}
        renamed: set[int] = set()
        for current in scope.traverse():
            for table in list(current.sources.values()):
                if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
                    continue
                if id(table) in renamed:
                    continue
                renamed.add(id(table))
                key = relation_key(table, dialect)
                placeholder = by_key.setdefault(key, _PLACEHOLDER.format(len(by_key)))
                relations[placeholder] = key
                alias = table.alias_or_name
                table.set("catalog", None)
                table.set("db", None)
                table.set("this", exp.to_identifier(placeholder, quoted=True))
                if not table.alias:
                    table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        for current in scope.traverse():
            _mark_stars(current)
        mapping = {
            placeholder: {_column_name(c, dialect): "UNKNOWN" for c in known[key]}
            for placeholder, key in relations.items()
            if key in known
        }
        qualified = qualify(
            tree,
            dialect=dialect,
            schema=MappingSchema(mapping, dialect=dialect, normalize=False),
            validate_qualify_columns=False,
        )
        root = build_scope(qualified)
    except (SqlglotError, KeyError, ValueError, TypeError, AttributeError):
        return None
    if root is None:
        return None
    all_relations = sorted(set(relations.values()))
    try:
        return _shape(_Lineage(root, relations), root, all_relations)
    except (_Unprovable, RecursionError):
        return _opaque(qualified, relations, all_relations)


def _shape(lineage: _Lineage, root: Scope, all_relations: list[str]) -> ModelShape:
    _check_followable(root.expression)
    names = lineage.output_names(root)
    column_fingerprints: dict[str, str] = {}
    column_sources: dict[str, dict[str, frozenset[str]]] = {}
    reads: _Deps = {relation: set() for relation in all_relations}
    for name in names:
        key, deps = lineage.output(root, name)
        column_fingerprints[name] = key
        column_sources[name] = {relation: frozenset(cols) for relation, cols in deps.items() if cols}
        _merge(reads, deps)
    structure, structural = lineage.structure(root)
    _merge(reads, structural)
    return ModelShape(
        columns=tuple(names),
        column_fingerprints=column_fingerprints,
        structure_fingerprint=fingerprint("structure", structure),
        column_sources=column_sources,
        structural_sources={relation: frozenset(cols) for relation, cols in structural.items() if cols},
        reads={relation: frozenset(cols) for relation, cols in reads.items()},
        star_relations=frozenset(lineage.star_relations(root)),
    )


def _opaque(
    qualified: exp.Expression, relations: Mapping[str, str], all_relations: list[str]
) -> ModelShape:
    """A shape whose columns are unknown: any change to the query is a change to every column."""
    return ModelShape(
        columns=None,
        column_fingerprints={},
        structure_fingerprint=fingerprint("opaque", _serialize_raw(qualified, relations)),
        column_sources={},
        structural_sources={},
        reads={relation: ALL for relation in all_relations},
        star_relations=frozenset(all_relations),
    )


def categorize(before: ModelShape | None, after: ModelShape | None) -> Change:
    """The category of the change from `before` to `after` and the output columns it affects."""
    if before is None or after is None:
        return Change("unknown", ALL)
    if before.structure_fingerprint != after.structure_fingerprint:
        return Change("breaking", ALL)
    if before.columns is None or after.columns is None:
        if before.columns is None and after.columns is None:
            return Change("metadata_only", frozenset())
        return Change("unknown", ALL)
    old, new = set(before.columns), set(after.columns)
    surviving_before = [c for c in before.columns if c in new]
    surviving_after = [c for c in after.columns if c in old]
    if surviving_before != surviving_after:
        return Change("breaking", ALL)
    removed = old - new
    added = new - old
    changed = {
        c
        for c in old & new
        if before.column_fingerprints.get(c) is None
        or before.column_fingerprints.get(c) != after.column_fingerprints.get(c)
    }
    if removed or changed:
        return Change("breaking", frozenset(removed | changed | added))
    if added:
        return Change("non_breaking", frozenset(added))
    return Change("metadata_only", frozenset())


def affected_outputs(shape: ModelShape | None, affected_by_parent: Mapping[str, Columns]) -> Columns:
    """The output columns of a model that its parents' changed columns reach.

    A parent that the query never names (it reaches the model some other way, such as a
    compile-time query) affects every column.
    """
    changed = {relation: cols for relation, cols in affected_by_parent.items() if cols == ALL or cols}
    if not changed:
        return frozenset()
    if shape is None or shape.columns is None:
        return ALL
    result: set[str] = set()
    for relation, cols in changed.items():
        read = shape.reads.get(relation)
        if read is None or read == ALL or cols == ALL:
            return ALL
        if cols & shape.structural_sources.get(relation, frozenset()):
            return ALL
        if relation in shape.star_relations and not cols <= read:
            # A column the analysis did not know passes through the `*` to an output column.
            return ALL
        for column in shape.columns:
            if cols & shape.column_sources.get(column, {}).get(relation, frozenset()):
                result.add(column)
    return frozenset(result)


def reads_any(shape: ModelShape | None, relation: str, columns: Columns) -> bool:
    """Whether the model can read any of `columns` of `relation`; False only when provably not.

    A relation that the query never names counts as read (it reaches the model some other way).
    """
    if columns != ALL and not columns:
        return False
    if shape is None:
        return True
    read = shape.reads.get(relation)
    if read is None or read == ALL or columns == ALL or relation in shape.star_relations:
        return True
    return bool(read & columns)


__all__ = [
    "ALL",
    "Change",
    "Columns",
    "ModelShape",
    "affected_outputs",
    "analyze",
    "categorize",
    "reads_any",
    "relation_key",
]
