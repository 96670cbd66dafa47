"""Automation sensors split along the asset graph: which assets each sensor evaluates.

A user-code automation sensor evaluates at most 500 assets. Assets requested on the same tick by
one sensor go out in one run; a child in another sensor than its parent waits a tick and a run.
So the split keeps connected assets (a dbt project) in one sensor where the limit allows.
"""

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import dagster as dg

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
