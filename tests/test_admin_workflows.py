"""The workflow admin: list columns and filters, the DAG drawn as SVG (one shape per node, status
colours, links, escaping, layout), read-only rules, and cancel / pause / resume guarded by their
permissions and confirmed before they go through the handle."""

from __future__ import annotations

import html as html_lib
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.utils import timezone
from uuid_utils.compat import uuid7

from horsies_django import OnError, SubWorkflowNode, WorkflowDefinition, WorkflowHandle, app
from horsies_django.admin import dag, workflow_actions
from horsies_django.models import Task, Workflow, WorkflowNode
from horsies_django.testing import run_pending
from tests.testapp.tasks import add
from tests.testapp.workflow_tasks import fail_int, fetch

pytestmark = pytest.mark.usefixtures("clean_tables")

WORKFLOWS = "/admin/horsies_django/workflow/"
PERMS = {
    "cancel_workflow": "Can cancel workflows",
    "pause_workflow": "Can pause and resume workflows",
}


class AdminChild(WorkflowDefinition[int]):
    definition_key = "tests.admin_wf.child"
    one = fetch.node()(order_id=1)

    class Meta:
        output = "one"


class AdminParent(WorkflowDefinition[int]):
    definition_key = "tests.admin_wf.parent"
    child = SubWorkflowNode(AdminChild)
    after = add.node(waits_for=[child])(a=1, b=2)

    class Meta:
        output = "child"


def make_workflow(
    status: str = "COMPLETED",
    *,
    name: str = "orders",
    nodes: list[tuple[str, str, list[int]]] | None = None,
    **fields: Any,
) -> Workflow:
    """A workflow row and its node rows, written directly (as stored data could be anything)."""
    now = timezone.now()
    spec = nodes if nodes is not None else [("a", "COMPLETED", [])]
    wf_id = uuid7()
    values: dict[str, Any] = {
        "id": wf_id,
        "name": name,
        "status": status,
        "root_workflow_id": wf_id,
        "node_count": len(spec),
        "nodes_done": sum(1 for _, s, _ in spec if s in ("COMPLETED", "FAILED", "SKIPPED")),
        "created_at": now - timedelta(seconds=10),
        "started_at": now - timedelta(seconds=9),
        "finished_at": now - timedelta(seconds=7) if status in ("COMPLETED", "FAILED") else None,
    }
    values.update(fields)
    workflow = Workflow.objects.create(**values)
    for index, (node_id, node_status, waits_for) in enumerate(spec):
        WorkflowNode.objects.create(
            workflow=workflow,
            index=index,
            node_id=node_id,
            task_name="tests.add",
            status=node_status,
            waits_for=waits_for,
        )
    return workflow


@pytest.fixture
def su_client(client: Client) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(user)
    return client


@pytest.fixture
def staff_client() -> Callable[..., Client]:
    """A logged-in staff user who may view workflows, plus the given custom codenames."""

    def build(*codenames: str) -> Client:
        user = User.objects.create_user(
            f"staff{uuid.uuid4().hex[:6]}", password=None, is_staff=True
        )
        ct = ContentType.objects.get_for_model(Workflow)
        view, _ = Permission.objects.get_or_create(
            content_type=ct, codename="view_workflow", defaults={"name": "Can view workflow"}
        )
        user.user_permissions.add(view)
        for code in codenames:
            perm, _ = Permission.objects.get_or_create(
                content_type=ct, codename=code, defaults={"name": PERMS[code]}
            )
            user.user_permissions.add(perm)
        c = Client()
        c.force_login(user)
        return c

    return build


def listed(page: str) -> set[str]:
    """Full workflow ids shown by the copy buttons of a list."""
    return set(re.findall(r'data-copy="([0-9a-f-]{36})"', page))


def svg_of(page: str) -> str:
    found = re.search(r'<svg class="hz-dag".*?</svg>', page, re.S)
    assert found is not None, "no DAG on the page"
    return found.group(0)


def svg_nodes(svg: str) -> dict[str, str]:
    """node id -> status, one entry per node shape drawn."""
    found = re.findall(
        r'<g class="hz-dag-node [^"]*" data-node-id="([^"]*)" data-status="(\w+)"', svg
    )
    return {html_lib.unescape(node_id): status for node_id, status in found}


# ------------------------------------------------------------------------------ list


def test_list_shows_status_name_progress_start_and_duration(su_client: Client) -> None:
    done = make_workflow(
        "COMPLETED", name="nightly.report", nodes=[("a", "COMPLETED", []), ("b", "COMPLETED", [0])]
    )
    running = make_workflow(
        "RUNNING",
        name="checkout",
        nodes=[("a", "COMPLETED", []), ("b", "PENDING", [0]), ("c", "PENDING", [1])],
    )
    page = su_client.get(WORKFLOWS).content.decode()
    assert listed(page) == {str(done.pk), str(running.pk)}
    assert 'class="hz-badge hz-completed"' in page
    assert 'class="hz-badge hz-running"' in page
    assert "nightly.<wbr>report" in page  # the name, breakable at its dots
    assert f'href="/admin/horsies_django/workflow/{done.pk}/change/"' in page
    row = re.search(rf'data-copy="{running.pk}".*?</tr>', page, re.S)
    assert row is not None
    assert '<span class="hz-progress-text">1/3</span>' in row.group(0)
    assert "so far" in row.group(0)  # still running: how long until now
    done_row = re.search(rf'data-copy="{done.pk}".*?</tr>', page, re.S)
    assert done_row is not None
    assert '<span class="hz-progress-text">2/2</span>' in done_row.group(0)
    assert "2.0 s" in done_row.group(0)
    assert "<time datetime=" in done_row.group(0)  # started
    assert "workflows" in page
    assert "≈" not in page


def test_list_filters_by_status_name_level_and_search(su_client: Client) -> None:
    failed = make_workflow("FAILED", name="billing")
    running = make_workflow("RUNNING", name="checkout", finished_at=None)
    child = make_workflow(
        "RUNNING", name="checkout.child", depth=1, parent_workflow=running, parent_node_index=0
    )
    page = su_client.get(WORKFLOWS).content.decode()
    assert "?status__exact=FAILED" in page
    assert "?name=billing" in page
    assert "?name=checkout.child" in page
    assert listed(su_client.get(f"{WORKFLOWS}?status__exact=FAILED").content.decode()) == {
        str(failed.pk)
    }
    assert listed(su_client.get(f"{WORKFLOWS}?name=checkout").content.decode()) == {str(running.pk)}
    assert listed(su_client.get(f"{WORKFLOWS}?level=sub").content.decode()) == {str(child.pk)}
    assert listed(su_client.get(f"{WORKFLOWS}?level=top").content.decode()) == {
        str(failed.pk),
        str(running.pk),
    }
    assert listed(su_client.get(f"{WORKFLOWS}?q=CHECKOUT").content.decode()) == {
        str(running.pk),
        str(child.pk),
    }
    assert listed(su_client.get(f"{WORKFLOWS}?q={failed.pk}").content.decode()) == {str(failed.pk)}
    year = timezone.localtime(failed.created_at).year
    drilled = su_client.get(f"{WORKFLOWS}?created_at__year={year}").content.decode()
    assert len(listed(drilled)) == 3


def test_workflows_cannot_be_added_changed_or_deleted(su_client: Client) -> None:
    workflow = make_workflow("RUNNING", finished_at=None)
    assert su_client.get(f"{WORKFLOWS}add/").status_code == 403
    detail = su_client.get(f"{WORKFLOWS}{workflow.pk}/change/").content.decode()
    assert 'name="status"' not in detail
    assert "deletelink" not in detail
    change = su_client.post(f"{WORKFLOWS}{workflow.pk}/change/", {"status": "COMPLETED"})
    assert change.status_code == 403
    assert su_client.post(f"{WORKFLOWS}{workflow.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in su_client.get(WORKFLOWS).content.decode()
    workflow.refresh_from_db()
    assert workflow.status == "RUNNING"


# ------------------------------------------------------------------------------ detail


def test_detail_draws_each_node_in_its_status_colour_linking_to_its_task(
    su_client: Client,
) -> None:
    bad = fail_int.node(node_id="bad")(code="OUT_OF_STOCK")
    after = add.node(waits_for=[bad], node_id="after")(a=1, b=1)
    side = fetch.node(node_id="side")(order_id=3)
    handle = app.workflow("admin.graph", tasks=[bad, after, side]).start().ok_value
    run_pending()
    page = su_client.get(f"{WORKFLOWS}{handle.workflow_id}/change/").content.decode()
    svg = svg_of(page)
    assert svg_nodes(svg) == {"bad": "FAILED", "after": "SKIPPED", "side": "COMPLETED"}
    assert svg.count('class="hz-dag-edge"') == 1  # bad -> after
    for node in WorkflowNode.objects.filter(workflow_id=handle.workflow_id):
        shape = re.search(
            rf'(<a class="hz-dag-link" href="([^"]*)">)?<g class="hz-dag-node [^"]*" '
            rf'data-node-id="{node.node_id}".*?</g>',
            svg,
            re.S,
        )
        assert shape is not None
        assert f'stroke="{dag.STATUS_COLOURS[node.status]}"' in shape.group(0)
        if node.task_id:  # the skipped node never got a task: nothing to link to
            assert shape.group(2) == f"/admin/horsies_django/task/{node.task_id}/change/"
        else:
            assert shape.group(1) is None
    # The node table: id, task (linked), status, times, error code.
    table = re.search(r'<table class="hz-nodes">.*?</table>', page, re.S)
    assert table is not None
    bad_row = re.search(r'<tr data-node-id="bad">.*?</tr>', table.group(0), re.S)
    assert bad_row is not None
    bad_task = WorkflowNode.objects.get(workflow_id=handle.workflow_id, node_id="bad").task_id
    assert f'href="/admin/horsies_django/task/{bad_task}/change/"' in bad_row.group(0)
    assert 'class="hz-badge hz-failed"' in bad_row.group(0)
    assert "OUT_OF_STOCK" in bad_row.group(0)
    assert "<time datetime=" in bad_row.group(0)
    assert 'class="hz-badge hz-failed"' in page.split('<table class="hz-nodes">')[0]  # workflow


def test_a_node_whose_task_runs_is_drawn_running(su_client: Client) -> None:
    handle = app.workflow("admin.running", tasks=[add.node(node_id="n")(a=1, b=2)]).start()
    workflow_id = handle.ok_value.workflow_id
    node = WorkflowNode.objects.get(workflow_id=workflow_id)
    assert node.status == "ENQUEUED"
    assert node.task_id is not None
    svg = svg_of(su_client.get(f"{WORKFLOWS}{workflow_id}/change/").content.decode())
    assert svg_nodes(svg) == {"n": "ENQUEUED"}
    Task.objects.filter(pk=node.task_id).update(status="RUNNING", started_at=timezone.now())
    svg = svg_of(su_client.get(f"{WORKFLOWS}{workflow_id}/change/").content.decode())
    assert svg_nodes(svg) == {"n": "RUNNING"}
    assert f'stroke="{dag.STATUS_COLOURS["RUNNING"]}"' in svg


def test_a_subworkflow_node_links_to_the_child_workflow(su_client: Client) -> None:
    handle = AdminParent.build().start().ok_value
    child = Workflow.objects.get(parent_workflow_id=handle.workflow_id)
    page = su_client.get(f"{WORKFLOWS}{handle.workflow_id}/change/").content.decode()
    svg = svg_of(page)
    assert svg_nodes(svg) == {"child": "RUNNING", "after": "PENDING"}
    assert (
        f'<a class="hz-dag-link" href="/admin/horsies_django/workflow/{child.pk}/change/">' in svg
    )
    child_page = su_client.get(f"{WORKFLOWS}{child.pk}/change/").content.decode()
    assert f'href="/admin/horsies_django/workflow/{handle.workflow_id}/change/"' in child_page
    assert svg_nodes(svg_of(child_page)) == {"one": "ENQUEUED"}


def test_hostile_node_ids_and_names_are_escaped(su_client: Client) -> None:
    hostile = '<script>alert("x")</script>'
    workflow = make_workflow(
        "RUNNING",
        name='<img src=x onerror="alert(1)">',
        nodes=[(hostile, "COMPLETED", []), ('a"><svg onload=alert(2)>', "PENDING", [0])],
    )
    page = su_client.get(f"{WORKFLOWS}{workflow.pk}/change/").content.decode()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "<svg onload" not in page
    assert html_lib.escape(hostile) in page or "&lt;script&gt;" in page
    assert set(svg_nodes(svg_of(page))) == {hostile, 'a"><svg onload=alert(2)>'}
    listing = su_client.get(WORKFLOWS).content.decode()
    assert "<img src=x" not in listing
    assert "&lt;img src=x" in listing


def test_layers_follow_the_longest_path_and_long_edges_get_their_own_slots() -> None:
    def node(index: int, *waits: int) -> dag.DagNode:
        return dag.DagNode(index, f"n{index}", "task", "t", "PENDING", waits, None)

    # 0 -> 1 -> 2, and 0 -> 2 directly: 2 sits after 1, not beside it.
    nodes = [node(0), node(1, 0), node(2, 0, 1), node(3)]
    assert dag.layers(nodes) == {0: 0, 1: 1, 2: 2, 3: 0}
    # The long edge 0 -> 2 crosses column 1 in a slot of its own, not behind node 1.
    layout = dag.positions(nodes)
    assert list(layout.lanes) == [(0, 2)]
    (lane,) = layout.lanes[(0, 2)]
    node1_top = layout.corners[1][1]
    assert not node1_top <= lane <= node1_top + dag.NODE_H
    # A cycle (forbidden by validation, possible in stored rows) does not hang or crash.
    assert dag.layers([node(0, 1), node(1, 0)]) == {0: 0, 1: 0}


def test_a_wide_graph_of_250_nodes_renders_in_a_scrolling_box(su_client: Client) -> None:
    fan = [(f"leaf-{i}", "COMPLETED", [0]) for i in range(248)]
    workflow = make_workflow(
        "RUNNING",
        nodes=[("root", "COMPLETED", []), *fan, ("join", "PENDING", list(range(1, 249)))],
    )
    page = su_client.get(f"{WORKFLOWS}{workflow.pk}/change/").content.decode()
    svg = svg_of(page)
    assert len(svg_nodes(svg)) == 250
    assert svg.count('class="hz-dag-edge"') == 248 * 2
    size = re.search(r'width="(\d+)" height="(\d+)" viewBox="0 0 (\d+) (\d+)"', svg)
    assert size is not None
    width, height = int(size.group(1)), int(size.group(2))
    assert width < 1000  # three columns
    assert height == 2 * dag.PAD + 248 * dag.NODE_H + 247 * dag.GAP_Y  # natural size: it scrolls
    assert '<div class="hz-dag-scroll"' in page


# ------------------------------------------------------------------------------ actions


def post_action(c: Client, action: str, *workflows: Any, confirm: bool = False) -> Any:
    ids = [str(getattr(w, "workflow_id", None) or w.pk) for w in workflows]
    data: dict[str, Any] = {"action": action, "_selected_action": ids}
    if confirm:
        data["post"] = "yes"
    else:
        data["index"] = "0"
    return c.post(WORKFLOWS, data, follow=confirm)


def running_workflow(name: str = "admin.acted") -> WorkflowHandle:
    first = add.node(node_id="first")(a=1, b=2)
    second = add.node(waits_for=[first], node_id="second")(a=3, b=4)
    handle: WorkflowHandle = app.workflow(name, tasks=[first, second]).start().ok_value
    return handle


@pytest.mark.parametrize("action", list(workflow_actions.ACTIONS))
def test_action_without_permission_is_hidden_and_forged_post_is_403(
    staff_client: Callable[..., Client], action: str
) -> None:
    handle = running_workflow()
    if action == "resume_workflows":
        assert handle.pause().ok_value is True
    before = handle.status().ok_value
    needed = workflow_actions.ACTIONS[action].codename
    others = {a.codename for a in workflow_actions.ACTIONS.values()} - {needed}
    c = staff_client(*others)
    assert f'value="{action}"' not in c.get(WORKFLOWS).content.decode()
    detail = c.get(f"{WORKFLOWS}{handle.workflow_id}/change/").content.decode()
    assert f'data-action="{action}"' not in detail
    assert post_action(c, action, handle).status_code == 403
    assert post_action(c, action, handle, confirm=True).status_code == 403
    assert handle.status().ok_value == before


@pytest.mark.parametrize("action", list(workflow_actions.ACTIONS))
def test_action_with_permission_is_offered_on_the_list_and_the_page(
    staff_client: Callable[..., Client], action: str
) -> None:
    handle = running_workflow()
    if action == "resume_workflows":
        handle.pause()
    c = staff_client(workflow_actions.ACTIONS[action].codename)
    assert f'value="{action}"' in c.get(WORKFLOWS).content.decode()
    detail = c.get(f"{WORKFLOWS}{handle.workflow_id}/change/").content.decode()
    assert f'data-action="{action}"' in detail


def test_cancel_asks_for_confirmation_then_cancels_through_the_handle(
    staff_client: Callable[..., Client],
) -> None:
    handle = running_workflow()
    done = make_workflow("COMPLETED", name="finished")
    c = staff_client("cancel_workflow")
    page = post_action(c, "cancel_workflows", handle, done).content.decode()
    assert "Cancel: are you sure?" in page
    assert "<strong>1</strong> of the 2" in page
    assert str(handle.workflow_id) in page
    assert str(done.pk) in page
    assert "skipped: COMPLETED: it has ended" in page
    assert handle.status().ok_value == "RUNNING"  # nothing happened yet
    resp = post_action(c, "cancel_workflows", handle, done, confirm=True)
    texts = [str(m) for m in resp.context["messages"]]
    assert texts == ["Cancelled 1 workflow.", "Skipped 1: COMPLETED: it has ended (1)"]
    assert handle.status().ok_value == "CANCELLED"
    nodes = dict(
        WorkflowNode.objects.filter(workflow_id=handle.workflow_id).values_list("node_id", "status")
    )
    assert nodes == {"first": "SKIPPED", "second": "SKIPPED"}
    assert set(Task.objects.values_list("status", flat=True)) == {"CANCELLED"}
    detail = c.get(f"{WORKFLOWS}{handle.workflow_id}/change/").content.decode()
    assert 'data-action="cancel_workflows"' not in detail  # it has ended: no button


def test_pause_then_resume_through_the_handle(staff_client: Callable[..., Client]) -> None:
    handle = running_workflow()
    c = staff_client("pause_workflow")
    detail = c.get(f"{WORKFLOWS}{handle.workflow_id}/change/").content.decode()
    assert 'data-action="pause_workflows"' in detail
    assert 'data-action="resume_workflows"' not in detail  # not paused
    assert 'data-action="cancel_workflows"' not in detail  # no cancel permission
    page = post_action(c, "resume_workflows", handle).content.decode()
    assert "skipped: RUNNING: only PAUSED workflows can be resumed" in page
    resp = post_action(c, "pause_workflows", handle, confirm=True)
    assert [str(m) for m in resp.context["messages"]] == ["Paused 1 workflow."]
    assert handle.status().ok_value == "PAUSED"
    assert run_pending() == []  # its task was abandoned: nothing runs while paused
    detail = c.get(f"{WORKFLOWS}{handle.workflow_id}/change/").content.decode()
    assert 'data-action="resume_workflows"' in detail
    assert 'data-action="pause_workflows"' not in detail
    resp = post_action(c, "resume_workflows", handle, confirm=True)
    assert [str(m) for m in resp.context["messages"]] == ["Resumed 1 workflow."]
    run_pending()
    assert handle.status().ok_value == "COMPLETED"


def test_on_error_pause_is_resumed_from_the_admin(su_client: Client) -> None:
    bad = fail_int.node(node_id="bad")(code="X")
    gate = add.node(node_id="gate")(a=1, b=1)
    handle = app.workflow("admin.pausing", tasks=[bad, gate], on_error=OnError.PAUSE).start()
    workflow_id = handle.ok_value.workflow_id
    run_pending(task_names=["tests.wf.fail_int"])
    page = su_client.get(f"{WORKFLOWS}?status__exact=PAUSED").content.decode()
    assert listed(page) == {str(workflow_id)}
    assert 'class="hz-badge hz-paused"' in page
    post_action(su_client, "resume_workflows", handle.ok_value, confirm=True)
    run_pending()
    assert Workflow.objects.get(pk=workflow_id).status == "FAILED"


def test_action_post_without_csrf_token_is_rejected() -> None:
    user = User.objects.create_superuser("csrf", "c@example.com", None)
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    handle = running_workflow()
    assert post_action(c, "cancel_workflows", handle, confirm=True).status_code == 403
    assert handle.status().ok_value == "RUNNING"
