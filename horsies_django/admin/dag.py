"""A workflow's DAG drawn as inline SVG on the server: no JavaScript, no layout library.

Nodes sit in columns by their longest path from a root; every piece of text (node ids, task
names) goes through `format_html`, so a hostile id stored in the database stays text.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from horsies_django.states import NodeStatus

NODE_W: Final = 180
NODE_H: Final = 44
GAP_X: Final = 44
GAP_Y: Final = 14
PAD: Final = 12
ID_CHARS: Final = 22  # what fits on a node's first line (12 px, monospace)
LINE_CHARS: Final = 29  # the second line: status and task name (11 px)
EDGE: Final = "#8c959f"

# Mid-tone colours that read on Django's light and dark themes alike (text stays --body-fg).
STATUS_COLOURS: Final[dict[str, str]] = {
    NodeStatus.PENDING: "#6e7781",
    NodeStatus.READY: "#bf8700",
    NodeStatus.ENQUEUED: "#2f7ed8",
    NodeStatus.RUNNING: "#8250df",
    NodeStatus.COMPLETED: "#2da44e",
    NodeStatus.FAILED: "#d1242f",
    NodeStatus.SKIPPED: "#8c959f",
}


@dataclass(frozen=True, slots=True)
class DagNode:
    """One node as drawn: its status is the one shown (RUNNING while its task runs)."""

    index: int
    node_id: str
    kind: str
    task_name: str | None
    status: str
    waits_for: tuple[int, ...]
    url: str | None  # its task's admin page, or its child workflow's


def colour(status: str) -> str:
    return STATUS_COLOURS.get(status, EDGE)


def layers(nodes: Sequence[DagNode]) -> dict[int, int]:
    """Each node's column: the longest path from a root (Kahn's order; a cycle, which
    validation forbids but stored rows could hold, leaves its nodes in column 0)."""
    known = {n.index for n in nodes}
    deps = {n.index: {d for d in n.waits_for if d in known and d != n.index} for n in nodes}
    children: dict[int, list[int]] = defaultdict(list)
    for index, ds in deps.items():
        for d in ds:
            children[d].append(index)
    waiting = {i: len(ds) for i, ds in deps.items()}
    column = dict.fromkeys(known, 0)
    queue = deque(sorted(i for i, n in waiting.items() if n == 0))
    while queue:
        i = queue.popleft()
        for child in children[i]:
            column[child] = max(column[child], column[i] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                queue.append(child)
    return column


Slot = tuple[int, int, int]  # an edge's place in a column it crosses: (from, to, column)


@dataclass(frozen=True, slots=True)
class Layout:
    corners: dict[int, tuple[int, int]]  # each node's top-left corner
    lanes: dict[tuple[int, int], list[int]]  # an edge crossing columns: its height in each
    width: int
    height: int


def positions(nodes: Sequence[DagNode]) -> Layout:
    """Where each node goes, and where each edge crosses the columns between its ends.

    An edge spanning several columns takes a slot in each column it crosses (Sugiyama's dummy
    nodes), so it never runs behind a node it does not touch. Inside a column, nodes and slots
    are ordered by the mean row of what leads into them (fewer crossings), then by index; shorter
    columns are centred against the tallest.
    """
    column = layers(nodes)
    members: dict[int, list[int | Slot]] = defaultdict(list)
    before: dict[int | Slot, list[int | Slot]] = {}
    for node in nodes:
        c = column[node.index]
        members[c].append(node.index)
        before[node.index] = []
        for d in sorted(set(node.waits_for)):
            if d not in column or d == node.index:
                continue
            previous: int | Slot = d
            for between in range(column[d] + 1, c):
                slot = (d, node.index, between)
                members[between].append(slot)
                before[slot] = [previous]
                previous = slot
            before[node.index].append(previous)
    rows: dict[int | Slot, float] = {}
    for c in sorted(members):

        def key(item: int | Slot) -> tuple[float, int, int]:
            placed = [rows[p] for p in before[item] if p in rows]
            mean = sum(placed) / len(placed) if placed else -1.0
            return (mean, 0, item) if isinstance(item, int) else (mean, 1, item[1])

        for row, item in enumerate(sorted(members[c], key=key)):
            rows[item] = row
    tallest = max((len(v) for v in members.values()), default=0)
    columns = max(members, default=-1) + 1
    corners: dict[int, tuple[int, int]] = {}
    lanes: dict[tuple[int, int], list[int]] = defaultdict(list)
    for c in sorted(members):
        offset = (tallest - len(members[c])) * (NODE_H + GAP_Y) // 2
        x = PAD + c * (NODE_W + GAP_X)
        for item in members[c]:
            y = PAD + offset + int(rows[item]) * (NODE_H + GAP_Y)
            if isinstance(item, int):
                corners[item] = (x, y)
            else:
                lanes[(item[0], item[1])].append(y + NODE_H // 2)
    return Layout(
        corners=corners,
        lanes=dict(lanes),
        width=PAD * 2 + columns * NODE_W + max(columns - 1, 0) * GAP_X,
        height=PAD * 2 + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y,
    )


def _clip(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


def _edge(
    start: tuple[int, int], end: tuple[int, int], lanes: list[int], skipped: bool
) -> SafeString:
    """A curve across each gap between columns, a straight run through each column crossed."""
    x, y = start[0] + NODE_W, start[1] + NODE_H // 2
    path = [f"M{x} {y}"]
    bend = GAP_X // 2
    for lane in lanes:
        nx = x + GAP_X
        path.append(f"C{x + bend} {y} {nx - bend} {lane} {nx} {lane}")
        x, y = nx + NODE_W, lane
        path.append(f"L{x} {y}")
    x2, y2 = end[0] - 2, end[1] + NODE_H // 2
    path.append(f"C{x + bend} {y} {x2 - bend} {y2} {x2} {y2}")
    return format_html(
        '<path class="hz-dag-edge" d="{}" fill="none" stroke="{}" '
        'stroke-width="1.3"{} marker-end="url(#hz-dag-arrow)"/>',
        " ".join(path),
        EDGE,
        format_html(' stroke-dasharray="{}"', "4 3") if skipped else "",
    )


def _node(node: DagNode, corner: tuple[int, int]) -> SafeString:
    x, y = corner
    fill = colour(node.status)
    room = max(LINE_CHARS - len(node.status) - 1, 6)
    what = (
        "subworkflow"
        if node.kind == "subworkflow"
        else _clip(node.task_name or "-", room, keep_end=True)
    )
    tip = f"{node.node_id} (#{node.index}): {node.task_name or node.kind}, {node.status}"
    shape = format_html(
        '<g class="hz-dag-node hz-node-{}" data-node-id="{}" data-status="{}">'
        "<title>{}</title>"
        '<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{}" fill-opacity="0.16" '
        'stroke="{}" stroke-width="1.6"{}/>'
        '<text class="hz-dag-id" x="{}" y="{}" fill="#1f2328">{}</text>'
        '<text class="hz-dag-sub" x="{}" y="{}" fill="#57606a">'
        '<tspan fill="{}" font-weight="600">{}</tspan> {}</text></g>',
        node.status.lower(),
        node.node_id,
        node.status,
        tip,
        x,
        y,
        NODE_W,
        NODE_H,
        fill,
        fill,
        format_html(' stroke-dasharray="{}"', "5 3") if node.status == NodeStatus.SKIPPED else "",
        x + 10,
        y + 18,
        _clip(node.node_id, ID_CHARS),
        x + 10,
        y + 35,
        fill,
        node.status.title(),
        what,
    )
    if not node.url:
        return shape
    return format_html('<a class="hz-dag-link" href="{}">{}</a>', node.url, shape)


def render(nodes: Sequence[DagNode]) -> SafeString:
    """The whole picture: edges first, nodes over them, at its natural size (the page's
    container scrolls, so a 200-node graph stays readable instead of shrinking to dots)."""
    if not nodes:
        return format_html("{}", "")
    layout = positions(nodes)
    corners = layout.corners
    edges = format_html_join(
        "",
        "{}",
        (
            (
                _edge(
                    corners[d],
                    corners[n.index],
                    layout.lanes.get((d, n.index), []),
                    n.status == NodeStatus.SKIPPED,
                ),
            )
            for n in nodes
            for d in sorted(set(n.waits_for))
            if d in corners and d != n.index
        ),
    )
    shapes = format_html_join("", "{}", ((_node(n, corners[n.index]),) for n in nodes))
    width, height = layout.width, layout.height
    return format_html(
        '<svg class="hz-dag" xmlns="http://www.w3.org/2000/svg" role="img" '
        'aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" font-size="12">'
        '<defs><marker id="hz-dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker></defs>{}{}</svg>',
        f"Workflow graph of {len(nodes)} node{'s' if len(nodes) != 1 else ''}",
        width,
        height,
        width,
        height,
        EDGE,
        edges,
        shapes,
    )


def legend() -> SafeString:
    """The status colours, in lifecycle order."""
    return format_html_join(
        "",
        '<span class="hz-dag-key"><span class="hz-dag-swatch" style="border-color: {}; '
        'background: color-mix(in srgb, {} 16%, transparent)"></span>{}</span>',
        ((c, c, s.title()) for s, c in STATUS_COLOURS.items()),
    )
