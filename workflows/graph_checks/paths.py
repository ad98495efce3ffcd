"""Paths through the node graph: what is reachable, what is on a cycle, the shortest cycle."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence


def _on_or_behind_cycles(succ: Mapping[str, list[str]], pred: Mapping[str, list[str]]) -> set[str]:
    """The nodes a topological sort cannot place: every node on a cycle (and those after one).

    Linear in the graph, so an acyclic pipeline of any size is cleared at once and the per-node
    cycle search runs only where a cycle is.
    """
    waiting = {name: len(set(sources)) for name, sources in pred.items()}
    ready = deque(name for name, count in waiting.items() if count == 0)
    while ready:
        name = ready.popleft()
        del waiting[name]
        for target in set(succ.get(name, [])):
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return set(waiting)


def _walk(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    """Every node reachable from ``start`` along ``edges`` (``start`` only if on a cycle)."""
    found: set[str] = set()
    queue = deque(edges.get(start, []))
    while queue:
        name = queue.popleft()
        if name not in found:
            found.add(name)
            queue.extend(edges.get(name, []))
    return found


def shortest_cycle(
    start: str, edges: Mapping[str, Sequence[str]], within: set[str] | None = None
) -> list[str] | None:
    """The shortest path ``start -> … -> start`` along ``edges`` (only through ``within``, when
    given), or None if there is none. Used for node cycles here and for chain loops between
    pipelines (the client's check when a definition is applied)."""
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for target in edges.get(name, []):
            if within is not None and target not in within:
                continue
            if target == start:
                path = [name]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if target not in parents:
                parents[target] = name
                queue.append(target)
    return None
