"""Where each vertex of a Graph goes on the stepper page: layers from inputs (top) to the output
(bottom), a leaf just above the first operation that uses it, and each layer ordered by the
mean position of its neighbours (two sweeps) so that edges cross less. No dependency."""

from __future__ import annotations

BOX_W, BOX_H = 164, 48  # one vertex: two lines of text
GAP_X, GAP_Y = 22, 52  # room for the edge labels between layers
MARGIN = 12


def layout(graph) -> tuple[dict[str, tuple[float, float]], float, float]:
    """({vertex id: (x, y) of its box's centre}, width, height) in SVG units."""
    ops = graph.operations
    inputs: dict[str, list[str]] = {v.id: [] for v in graph.vertices}
    users: dict[str, list[str]] = {v.id: [] for v in graph.vertices}
    for e in graph.edges:
        inputs[e.target].append(e.source)
        users[e.source].append(e.target)
    rank: dict[str, int] = {}
    for v in ops:  # creation order is topological
        rank[v.id] = 1 + max((rank.get(s, 0) for s in inputs[v.id]), default=0)
    for v in graph.vertices:
        if v.kind != "op":
            rank[v.id] = min((rank[u] for u in users[v.id]), default=1) - 1
    low = min(rank.values())
    rows: dict[int, list[str]] = {}
    seq = {v.id: (v.seq if v.seq is not None else -1) for v in graph.vertices}
    first_use = {v.id: min((seq[u] for u in users[v.id]), default=0) for v in graph.vertices}
    for v in graph.vertices:
        rows.setdefault(rank[v.id] - low, []).append(v.id)
    order = {r: sorted(ids, key=lambda i: (seq[i] if seq[i] >= 0 else first_use[i], i))
             for r, ids in sorted(rows.items())}
    for ranks in (sorted(order), sorted(order, reverse=True)):  # a sweep down, then up
        for r in ranks:
            # rows are centred, so a vertex's x is its index from the row's middle
            position = {i: k - (len(row) - 1) / 2 for row in order.values()
                        for k, i in enumerate(row)}
            order[r].sort(key=lambda i, pos=position: _mean(
                [pos[n] for n in inputs[i] + users[i]], pos[i]))
    widest = max(len(row) for row in order.values())
    width = widest * BOX_W + (widest - 1) * GAP_X + 2 * MARGIN
    height = len(order) * BOX_H + (len(order) - 1) * GAP_Y + 2 * MARGIN
    places = {}
    for k, r in enumerate(sorted(order)):
        row = order[r]
        row_width = len(row) * BOX_W + (len(row) - 1) * GAP_X
        x0 = (width - row_width) / 2 + BOX_W / 2
        for j, vid in enumerate(row):
            places[vid] = (x0 + j * (BOX_W + GAP_X), MARGIN + BOX_H / 2 + k * (BOX_H + GAP_Y))
    return places, width, height


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default
