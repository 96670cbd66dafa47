"""AutomationSensorComponent: the sensors that evaluate the automation conditions, on by default."""

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import dagster as dg
from pydantic import Field

from dagster_autopilot._dagster_internals import MAX_ASSETS_PER_USER_CODE_SENSOR
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor
from dagster_autopilot.components.fields import ComponentModel, integer

Parents = Mapping[dg.AssetKey, Collection[dg.AssetKey]]

# Roots whose updates `_cut` weighs when it chooses how to cut a component: enough to tell the two
# orders apart, few enough that a 5,000-asset component is cut in well under a second.
_ROOTS_SAMPLED = 8


def parents_of(specs: Iterable[dg.AssetSpec]) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """Each spec's key with the keys of its deps that are among `specs`.

    A dep on a key none of the specs defines (an external table, another code location's asset)
    links nothing: no sensor here evaluates it and no run here builds it, so two projects that
    merely read the same outside table stay apart.
    """
    specs = list(specs)
    defined = {spec.key for spec in specs}
    return {spec.key: {dep.asset_key for dep in spec.deps} & defined for spec in specs}


def split_into_sensors(
    parents: Parents, automated: Collection[dg.AssetKey], limit: int
) -> list[list[dg.AssetKey]]:
    """The automated keys in groups of at most `limit`, one group per sensor, split along the graph.

    `parents` is the asset graph (every asset's parents, automated or not); every automated key is
    in exactly one group, and the same graph always gives the same groups in the same order.

    - The assets are grouped by the weakly connected components of the graph, so a dbt project's
      models stay together; a non-automated asset between two automated ones connects them too.
    - A component with more than `limit` automated assets is cut into chunks (`_cut`).
    - The components and chunks are packed into as few groups as possible, largest first, each into
      the first group with room (first-fit decreasing).

    Assets of one group go out in one run when they are requested on the same tick. A child whose
    parent is in another group is not requested on the tick its parent is: its sensor cannot see
    the other sensor's request, and waits while the parent's run is queued or in progress. Its own
    sensor requests it on a later tick, after the parent's run has materialized the parent: one
    more run. (Should its sensor tick before that run is queued, with another parent of the child
    updated, the child goes out early, and again once the parent is built.)
    """
    graph = {key: set(keys) for key, keys in parents.items()}
    for key in [*automated, *(parent for keys in parents.values() for parent in keys)]:
        graph.setdefault(key, set())
    automated = set(automated)
    pieces = [
        (index, chunk)
        for index, component in enumerate(_components(graph))
        for chunk in _cut(component, graph, automated, limit)
        if chunk  # a component without automated assets
    ]
    # Largest first; equal sizes keep the components' order, so the groups are stable.
    pieces.sort(key=lambda piece: (-len(piece[1]), piece[0]))
    groups: list[list[dg.AssetKey]] = []
    for _, chunk in pieces:
        group = next((g for g in groups if len(g) + len(chunk) <= limit), None)
        if group is None:
            groups.append(list(chunk))
        else:
            group.extend(chunk)
    return [sorted(group) for group in groups]


def runs_per_tick(
    parents: Parents,
    groups: Sequence[Collection[dg.AssetKey]],
    updated: Collection[dg.AssetKey] | None = None,
) -> list[int]:
    """How many runs the sensors of `groups` request on each tick after the `updated` assets
    (default: every root, an asset without parents, such as a dbt seed) were updated elsewhere.

    A model of the fan-out, not an evaluation: every grouped asset downstream of an update is
    requested once, on the first tick after all its updated parents are built. A parent in the same
    group is built in the same run, so the child goes on the parent's tick; a parent in another
    group is built by that group's run, so the child goes one tick later. Each group requests one
    run per tick on which it requests anything. It is the fewest runs the split allows: a child
    waits for all its parents only when their runs are already queued as its sensor ticks;
    otherwise it can go out once per parent update (see `split_into_sensors`).
    """
    group_of = {key: index for index, group in enumerate(groups) for key in group}
    roots = {key for key, keys in parents.items() if not keys}
    order = _parents_first(parents, sorted(parents))
    return _runs_per_tick(order, parents, group_of, roots if updated is None else set(updated))


def _runs_per_tick(
    order: Sequence[dg.AssetKey],
    parents: Parents,
    group_of: Mapping[dg.AssetKey, int],
    updated: Collection[dg.AssetKey],
) -> list[int]:
    """`runs_per_tick`, with the assets in `order` (parents first) and their groups given."""
    tick: dict[dg.AssetKey, int] = {}
    for key in order:
        group = group_of.get(key)
        if group is None or key in updated:
            continue
        latest = -1
        for parent in parents[key]:
            if parent in updated:
                latest = max(latest, 0)
            elif parent in tick:
                latest = max(latest, tick[parent] + (group_of[parent] != group))
        if latest >= 0:
            tick[key] = latest
    runs = {(group_of[key], t) for key, t in tick.items()}
    return [sum(t == i for _, t in runs) for i in range(max(tick.values(), default=-1) + 1)]


def crossing_edges(parents: Parents, groups: Sequence[Collection[dg.AssetKey]]) -> int:
    """Parent/child pairs of automated assets in different groups."""
    group_of = {key: index for index, group in enumerate(groups) for key in group}
    return sum(
        group_of[parent] != group_of[key]
        for key in group_of
        for parent in parents.get(key, ())
        if parent in group_of
    )


def _components(graph: Parents) -> list[list[dg.AssetKey]]:
    """The weakly connected components of `graph`, each sorted, in the order of their first key."""
    neighbours: dict[dg.AssetKey, set[dg.AssetKey]] = {key: set() for key in graph}
    for key, parents in graph.items():
        for parent in parents:
            neighbours[key].add(parent)
            neighbours[parent].add(key)
    seen: set[dg.AssetKey] = set()
    components = []
    for start in sorted(graph):
        if start in seen:
            continue
        seen.add(start)
        component, frontier = [start], [start]
        while frontier:
            for other in neighbours[frontier.pop()] - seen:
                seen.add(other)
                component.append(other)
                frontier.append(other)
        components.append(sorted(component))
    return components


def _parents_first(graph: Parents, starts: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    """Every ancestor of each start, then the start, depth first: parents before children, and
    each start's ancestors right before it, as far as an earlier start has not placed them."""
    order: list[dg.AssetKey] = []
    seen: set[dg.AssetKey] = set()
    for start in starts:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(graph[start])))]
        while stack:
            key, parents = stack[-1]
            parent = next((p for p in parents if p not in seen), None)
            if parent is None:
                stack.pop()
                order.append(key)
            else:
                seen.add(parent)
                stack.append((parent, iter(sorted(graph[parent]))))
    return order


def _cut(
    component: list[dg.AssetKey], graph: Parents, automated: set[dg.AssetKey], limit: int
) -> list[list[dg.AssetKey]]:
    """The automated assets of one component: whole if they fit, else contiguous chunks of at most
    `limit` in an order that puts parents first.

    Two such orders are tried:
    - ancestor chains: below each leaf, its ancestors right before it, so a chunk holds whole
      lineages; this suits projects made of loosely joined lineages (one mart's models together);
    - layers: by the longest path from a root, ties in the first order; each chunk's parents are
      in the chunks before it, which suits densely joined projects, where any cut splits many
      parent/child pairs and ancestor chains would leave chunks spanning every depth.
    The cut that needs fewer runs when one root updates wins (`runs_per_tick`, summed over up to
    `_ROOTS_SAMPLED` roots, spread over the sorted roots), then the one with fewer parent/child
    pairs split; on a tie, ancestor chains.
    """
    keys = [key for key in component if key in automated]
    if len(keys) <= limit:
        return [keys]
    members = set(component)
    sub = {key: graph[key] & members for key in component}
    leaves = members - {parent for parents in sub.values() for parent in parents}
    chains = _parents_first(sub, sorted(leaves) or component)
    position = {key: index for index, key in enumerate(chains)}
    depth: dict[dg.AssetKey, int] = {}
    for key in chains:
        depth[key] = 1 + max((depth[p] for p in sub[key] if p in depth), default=-1)
    layers = sorted(chains, key=lambda key: (depth[key], position[key]))
    roots = [key for key in component if not sub[key]]
    sampled = roots[:: math.ceil(len(roots) / _ROOTS_SAMPLED)]

    def chunks(order: list[dg.AssetKey]) -> list[list[dg.AssetKey]]:
        kept = [key for key in order if key in automated]
        return [kept[i : i + limit] for i in range(0, len(kept), limit)]

    def cost(cut: list[list[dg.AssetKey]]) -> tuple[int, int]:
        group_of = {key: index for index, chunk in enumerate(cut) for key in chunk}
        runs = sum(sum(_runs_per_tick(chains, sub, group_of, {root})) for root in sampled)
        return runs, crossing_edges(sub, cut)

    return min((chunks(chains), chunks(layers)), key=cost)


def sensor_names(name: str, count: int) -> list[str]:
    """`name` for the first sensor (so a small project keeps its name), then `name_2`, `name_3`..."""
    return [name if i == 0 else f"{name}_{i + 1}" for i in range(count)]


class AutomationSensorComponent(ComponentModel):
    """Declares the automation condition sensors, RUNNING from the start.

    Dagster's implicit `default_automation_condition_sensor` is STOPPED by default, so without this
    nothing is ever requested until someone switches it on in the UI. The guardrails need
    user-code sensors, which may target at most 500 assets each: the component reads the assets
    of the other folders of the defs module and makes as many sensors as needed (`<name>`,
    `<name>_2`, ...), each covering at most `max_assets_per_sensor` automated assets, every
    automated asset in exactly one. The split follows the asset graph (`split_into_sensors`): a
    connected project stays in one sensor where it fits, so its updates go out in one run.
    """

    name: str = "autopilot_automation_sensor"
    """Name of the (first) sensor, as shown in the UI."""

    target: str = "*"
    """Dagster selection string of the assets these sensors evaluate."""

    minimum_interval_seconds: integer(minimum=1) = 10
    """Least seconds between ticks. The daemon checks sensors on a 5 s loop: 4 ticks at every loop
    (about every 5 s), while 10 ticks 10 to 15 s apart. Dagster's default is 30."""

    running_by_default: bool = True
    """Start the sensors RUNNING. Set `false` to start them STOPPED and switch them on in the UI."""

    max_assets_per_sensor: integer(minimum=1, maximum=MAX_ASSETS_PER_USER_CODE_SENSOR) = (
        MAX_ASSETS_PER_USER_CODE_SENSOR
    )
    """Automated assets per sensor; at most 500, Dagster's limit for user-code sensors."""

    run_tags: dict[str, str] = Field(default_factory=dict)
    """Tags added to every run these sensors launch, e.g. `autopilot/dbt_project: analytics`."""

    def asset_selections(self) -> dict[str, str]:
        """Checked against every component's assets once all are built (`defs_checks.py`)."""
        return {"target": self.target}

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        parents, keys = self._graph_and_automated_keys(context)
        if not keys:
            # Nothing found beside this component (e.g. assets defined outside the defs folders):
            # one sensor over the selection, which Dagster checks against the limit at each tick.
            return dg.Definitions(sensors=[self._sensor(self.name, self._selection())])
        groups = split_into_sensors(parents, keys, self.max_assets_per_sensor)
        names = sensor_names(self.name, len(groups))
        return dg.Definitions(
            sensors=[
                self._sensor(name, dg.AssetSelection.assets(*group))
                for name, group in zip(names, groups, strict=True)
            ]
        )

    def _selection(self) -> dg.AssetSelection:
        return dg.AssetSelection.from_string(self.target)

    def _sensor(self, name: str, target: dg.AssetSelection) -> AutopilotAutomationSensor:
        return AutopilotAutomationSensor(
            name,
            target=target,
            run_tags=self.run_tags or None,
            minimum_interval_seconds=self.minimum_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING
            if self.running_by_default
            else dg.DefaultSensorStatus.STOPPED,
        )

    def _graph_and_automated_keys(
        self, context: dg.ComponentLoadContext
    ) -> tuple[dict[dg.AssetKey, set[dg.AssetKey]], list[dg.AssetKey]]:
        """The assets of the other folders of the defs module, each with its parents there, and the
        keys among them with an automation condition, in `target`."""
        root = Path(context.defs_module_path)
        own = Path(context.path).resolve()
        assets: list = []
        resources: dict = {}
        for entry in sorted(root.iterdir()):
            if entry.name.startswith((".", "_")) or entry.resolve() == own:
                continue
            if entry.is_dir() and not any(entry.glob("defs.yaml")) and not any(entry.glob("*.py")):
                continue
            if entry.is_file() and entry.suffix != ".py":
                continue
            built = context.build_defs(entry)
            assets.extend(built.assets or [])
            resources.update(built.resources or {})
        specs = [
            spec
            for item in assets
            for spec in (item.specs if isinstance(item, dg.AssetsDefinition) else [item])
            if isinstance(spec, dg.AssetSpec)
        ]
        parents = parents_of(specs)
        keys = [spec.key for spec in specs if spec.automation_condition is not None]
        if self.target.strip() in ("*", ""):
            return parents, keys
        # With the assets' resources: Dagster builds no graph while a required resource is missing.
        graph = dg.Definitions(assets=assets, resources=resources).resolve_asset_graph()
        targeted = self._selection().resolve(graph, allow_missing=True)
        return parents, [key for key in keys if key in targeted]
