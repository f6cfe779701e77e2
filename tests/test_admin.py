"""The admin console: lists, filters, search, detail, read-only rules and guarded actions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from uuid_utils.compat import uuid7

from horsies_django.admin import actions
from horsies_django.models import Task, TaskAttempt, Worker
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db

TASKS = "/admin/horsies_django/task/"
ATTEMPTS = "/admin/horsies_django/taskattempt/"
WORKERS = "/admin/horsies_django/worker/"
PERMS = {
    "cancel_task": "Can cancel tasks",
    "reenqueue_task": "Can re-enqueue tasks",
    "run_task_now": "Can run waiting tasks now",
}


def make_task(status: str = "COMPLETED", *, sent_ago_s: float = 60, **fields: Any) -> Task:
    now = timezone.now()
    sent = now - timedelta(seconds=sent_ago_s)
    finished = status in ("COMPLETED", "FAILED", "CANCELLED", "EXPIRED")
    values: dict[str, Any] = {
        "id": uuid7(),
        "task_name": "tests.add",
        "queue_name": "default",
        "status": status,
        "kwargs": {"a": 1, "b": 2},
        "sent_at": sent,
        "enqueued_at": sent,
        "enqueue_sha": "x",
        "started_at": sent + timedelta(seconds=1) if finished else None,
        "finished_at": sent + timedelta(seconds=3) if finished else None,
    }
    values.update(fields)
    return Task.objects.create(**values)


def fixed_id(n: int) -> uuid.UUID:
    """A UUIDv7-shaped id for tests that search by part of an id: ids minted by uuid7() in the
    same millisecond share their first 12 hex digits, these differ there and in the last 4
    (while sharing the first 8, as a short id `01900000…0001` shows them)."""
    return uuid.UUID(f"01900000-{n:04x}-7000-8000-{n:012x}")


def make_attempt(task: Task, n: int, outcome: str = "FAILED", **fields: Any) -> TaskAttempt:
    finished = task.sent_at + timedelta(seconds=n * 2)
    values: dict[str, Any] = {
        "task": task,
        "attempt": n,
        "outcome": outcome,
        "started_at": finished - timedelta(milliseconds=250),
        "finished_at": finished,
    }
    values.update(fields)
    return TaskAttempt.objects.create(**values)


def make_worker(state: str = "RUNNING", heartbeat_ago_s: float = 1, **fields: Any) -> Worker:
    now = timezone.now()
    values: dict[str, Any] = {
        "id": uuid7(),
        "name": f"host:{len(fields)}",
        "hostname": "host",
        "pid": 4242,
        "processes": 2,
        "queues": ["default"],
        "state": state,
        "started_at": now - timedelta(hours=1),
        "heartbeat_at": now - timedelta(seconds=heartbeat_ago_s),
    }
    values.update(fields)
    return Worker.objects.create(**values)


@pytest.fixture
def su_client(client: Client) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(user)
    return client


@pytest.fixture
def staff_client() -> Callable[..., Client]:
    """A logged-in staff user with view permissions plus the given custom codenames."""

    def build(*codenames: str) -> Client:
        user = User.objects.create_user(
            f"staff{uuid.uuid4().hex[:6]}", password=None, is_staff=True
        )
        for model in (Task, TaskAttempt, Worker):
            ct = ContentType.objects.get_for_model(model)
            user.user_permissions.add(
                Permission.objects.get(content_type=ct, codename=f"view_{ct.model}")
            )
        task_ct = ContentType.objects.get_for_model(Task)
        for code in codenames:
            perm, _ = Permission.objects.get_or_create(
                content_type=task_ct, codename=code, defaults={"name": PERMS[code]}
            )
            user.user_permissions.add(perm)
        c = Client()
        c.force_login(user)
        return c

    return build


def ids_in(html: bytes) -> set[str]:
    """Full task ids rendered by the copy buttons of a list."""
    return set(re.findall(r'data-copy="([0-9a-f-]{36})"', html.decode()))


# ------------------------------------------------------------------------------ task list


def test_task_list_shows_columns_badges_attempts_and_summary(su_client: Client) -> None:
    failed = make_task("FAILED", error_code="BOOM", task_name="tests.boom")
    make_attempt(failed, 1, will_retry=True)
    make_attempt(failed, 2)
    make_task("PENDING", sent_ago_s=600)
    make_worker()
    html = su_client.get(TASKS).content.decode()
    assert f'data-copy="{failed.pk}"' in html
    assert str(failed.pk)[:8] + "…" in html
    assert 'class="hz-badge hz-failed"' in html
    assert 'class="hz-badge hz-pending"' in html
    row = re.search(rf'data-copy="{failed.pk}".*?</tr>', html, re.S)
    assert row is not None
    assert '<td class="field-attempts">2</td>' in row.group(0)
    assert 'class="field-duration">2.0 s' in html
    summary = re.search(r'<section class="hz-summary".*?</section>', html, re.S)
    assert summary is not None
    tiles = re.findall(
        r'<span class="hz-tile-value">([^<]+)</span>\s*'
        r'<span class="hz-tile-label">([^<]+)</span>',
        summary.group(0),
    )
    by_label = {label: value for value, label in tiles}
    assert by_label["Failed"] == "1"
    assert by_label["Pending"] == "1"
    assert by_label["default"] == "1"  # queue depth
    assert by_label["Failed, last hour"] == "1"
    assert by_label["Live workers"] == "1"
    assert by_label["Oldest pending"].endswith("s")  # "10 min 00 s"
    assert "?status__exact=FAILED&amp;finished=1h" in summary.group(0)
    assert "/admin/horsies_django/worker/?liveness=alive" in summary.group(0)


def test_summary_links_lead_to_filtered_lists(su_client: Client) -> None:
    old, new = make_task("PENDING", sent_ago_s=900), make_task("PENDING", sent_ago_s=10)
    make_task("COMPLETED")
    html = su_client.get(TASKS).content.decode()
    link = re.search(
        r'href="([^"]+)"[^>]*>\s*<span class="hz-tile-value">[^<]+</span>\s*'
        r'<span class="hz-tile-label">Oldest pending',
        html,
    )
    assert link is not None
    listed = su_client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert ids_in(listed.encode()) == {str(old.pk), str(new.pk)}
    assert listed.index(str(old.pk)) < listed.index(str(new.pk))  # oldest first


def test_attempts_column_is_one_query_whatever_the_page_size(su_client: Client) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert su_client.get(TASKS).status_code == 200
        return len(ctx.captured_queries)

    for _ in range(2):
        make_attempt(make_task("FAILED"), 1)
    few = queries()
    for _ in range(8):
        make_attempt(make_task("FAILED"), 1)
    assert queries() == few


def test_filters_by_status_queue_name_error_code_and_finish_time(su_client: Client) -> None:
    done = make_task("COMPLETED")
    failed = make_task("FAILED", task_name="tests.boom", error_code="BOOM")
    old_fail = make_task(
        "FAILED", error_code="OTHER", finished_at=timezone.now() - timedelta(days=2)
    )
    pending = make_task("PENDING")
    cases = {
        "status__exact=FAILED": {failed, old_fail},
        "status__exact=PENDING": {pending},
        "queue_name=default": {done, failed, old_fail, pending},
        "task_name=tests.boom": {failed},
        "error_code=OTHER": {old_fail},
        "finished=1h": {done, failed},
        "status__exact=FAILED&finished=24h": {failed},
    }
    for query, expected in cases.items():
        html = su_client.get(f"{TASKS}?{query}").content
        assert ids_in(html) == {str(t.pk) for t in expected}, query
    sidebar = su_client.get(TASKS).content.decode()
    assert "?task_name=tests.boom" in sidebar
    assert "?error_code=BOOM" in sidebar
    assert "?queue_name=default" in sidebar


def test_search_by_id_prefix_name_error_code_and_kwargs(su_client: Client) -> None:
    a = make_task(id=fixed_id(1), kwargs={"order_id": 42, "customer": {"email": "ann@example.com"}})
    b = make_task(
        "FAILED",
        id=fixed_id(2),
        task_name="shop.refund",
        error_code="CARD_DECLINED",
        kwargs={"order_id": 7},
    )
    c = make_task(id=fixed_id(3), task_name="shop.ship", kwargs={"order_id": "42x"})
    short = f"{str(a.pk)[:8]}…{str(a.pk)[-4:]}"
    cases: dict[str, set[Task]] = {
        str(a.pk): {a},
        str(b.pk).upper(): {b},
        str(a.pk).replace("-", "")[:20]: {a},
        short: {a},
        "refund": {b},
        "declined": {b},
        "order_id=42": {a},
        '{"customer": {"email": "ann@example.com"}}': {a},
        "ann@example.com": {a},
        "42x": {c},
        "7": {b},
        "nothing-like-this": set(),
    }
    for term, expected in cases.items():
        html = su_client.get(TASKS, {"q": term}).content
        assert ids_in(html) == {str(t.pk) for t in expected}, term


def test_date_hierarchy_drills_down_through_present_periods(su_client: Client) -> None:
    def at(y: int, m: int, d: int) -> datetime:
        return timezone.make_aware(datetime(y, m, d, 12))

    for when in (at(2024, 3, 5), at(2025, 1, 9), at(2025, 1, 20), at(2025, 6, 1)):
        make_task(sent_at=when, enqueued_at=when)
    top = su_client.get(TASKS).content.decode()
    assert "?sent_at__year=2024" in top
    assert "?sent_at__year=2025" in top
    assert "?sent_at__year=2023" not in top
    year = su_client.get(TASKS, {"sent_at__year": "2025"}).content.decode()
    assert re.findall(r"sent_at__month=(\d+)", year) == ["1", "6"]
    month = su_client.get(TASKS, {"sent_at__year": "2025", "sent_at__month": "1"}).content
    assert re.findall(r"sent_at__day=(\d+)", month.decode()) == ["9", "20"]
    assert len(ids_in(month)) == 2


# ------------------------------------------------------------------------------ task detail


def test_task_detail_shows_json_traceback_policy_worker_origin_and_attempts(
    su_client: Client,
) -> None:
    worker = make_worker()
    origin = make_task("FAILED")
    policy = {
        "kind": "exponential",
        "base_seconds": 30,
        "max_retries": 5,
        "auto_retry_for": ["TIMEOUT"],
    }
    task = make_task(
        "FAILED",
        kwargs={"order_id": 42, "items": ["a", "<b>"]},
        result={"err": {"error_code": "TIMEOUT", "message": "slow"}},
        error_code="TIMEOUT",
        failed_reason="slow <upstream>",
        claimed_by=worker.pk,
        options={"retry_policy": policy, "timeout_ms": 120_000},
        timeout_ms=120_000,
        retry_count=1,
        max_retries=5,
        origin=origin.pk,
    )
    make_attempt(
        task,
        1,
        error_code="TIMEOUT",
        error_message="first try",
        will_retry=True,
        worker_id=worker.pk,
    )
    make_attempt(
        task,
        2,
        error_code="TIMEOUT",
        error_message="second try",
        worker_id=worker.pk,
        traceback='Traceback (most recent call last):\n  File "x.py"\nTimeoutError\n',
    )
    html = su_client.get(f"{TASKS}{task.pk}/change/").content.decode()
    assert (
        '<pre class="hz-pre">{\n  &quot;items&quot;: [\n    &quot;a&quot;,\n    &quot;&lt;b&gt;'
        in html
    )
    assert "&quot;error_code&quot;: &quot;TIMEOUT&quot;" in html
    assert '<pre class="hz-pre">slow &lt;upstream&gt;</pre>' in html
    assert '<pre class="hz-pre">Traceback (most recent call last):' in html
    assert "&quot;base_seconds&quot;: 30" in html
    assert "120,000 ms" in html
    assert f'href="/admin/horsies_django/worker/{worker.pk}/change/"' in html
    assert f'href="/admin/horsies_django/task/{origin.pk}/change/"' in html
    assert "1 of 5" in html
    inline = html[html.index('id="attempts-group"') :]
    assert "first try" in inline
    assert "second try" in inline
    assert inline.index("first try") < inline.index("second try")
    assert 'class="hz-badge hz-failed"' in inline
    assert "250 ms" in inline
    editable = r'<(input|select|textarea)(?![^>]*type="hidden")[^>]*name="attempts-\d'
    assert re.search(editable, inline) is None  # read-only rows: no visible form fields


def test_tasks_cannot_be_added_changed_or_deleted(su_client: Client) -> None:
    task = make_task("PENDING")
    assert su_client.get(f"{TASKS}add/").status_code == 403
    detail = su_client.get(f"{TASKS}{task.pk}/change/").content.decode()
    assert 'name="status"' not in detail
    assert "deletelink" not in detail
    assert su_client.post(f"{TASKS}{task.pk}/change/", {"status": "COMPLETED"}).status_code == 403
    assert su_client.post(f"{TASKS}{task.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in su_client.get(TASKS).content.decode()
    task.refresh_from_db()
    assert task.status == "PENDING"
    for url in (ATTEMPTS, WORKERS):
        assert su_client.get(f"{url}add/").status_code == 403


# ------------------------------------------------------------------------------ actions


def post_action(c: Client, action: str, *tasks: Task, confirm: bool = False) -> Any:
    data: dict[str, Any] = {"action": action, "_selected_action": [str(t.pk) for t in tasks]}
    if confirm:
        data["post"] = "yes"
    else:
        data["index"] = "0"
    return c.post(TASKS, data, follow=confirm)


@pytest.mark.parametrize("action", list(actions.ACTIONS))
def test_action_without_permission_is_hidden_and_forged_post_is_403(
    staff_client: Callable[..., Client], action: str
) -> None:
    task = make_task("PENDING")
    others = [a.codename for a in actions.ACTIONS.values() if a.name != action]
    c = staff_client(*others)
    assert f'value="{action}"' not in c.get(TASKS).content.decode()
    assert f'data-action="{action}"' not in c.get(f"{TASKS}{task.pk}/change/").content.decode()
    assert post_action(c, action, task).status_code == 403
    assert post_action(c, action, task, confirm=True).status_code == 403
    task.refresh_from_db()
    assert task.status == "PENDING"


def test_cancel_asks_for_confirmation_then_uses_the_service(
    staff_client: Callable[..., Client],
) -> None:
    pending, claimed = make_task("PENDING"), make_task("CLAIMED")
    running1, running2, done = make_task("RUNNING"), make_task("RUNNING"), make_task("COMPLETED")
    c = staff_client("cancel_task")
    assert 'value="cancel_tasks"' in c.get(TASKS).content.decode()
    everything = (pending, claimed, running1, running2, done)
    page = post_action(c, "cancel_tasks", *everything).content.decode()
    assert "are you sure" in page
    assert "<strong>2</strong> of the 5" in page
    assert all(str(t.pk) in page for t in everything)
    assert Task.objects.filter(status="CANCELLED").count() == 0  # nothing happened yet
    resp = post_action(c, "cancel_tasks", *everything, confirm=True)
    texts = [str(m) for m in resp.context["messages"]]
    assert texts[0] == "Cancelled 2 tasks."
    assert texts[1].startswith("Skipped 3: task is RUNNING and cannot be cancelled")
    assert "user code has started and cannot be interrupted (2)" in texts[1]
    assert "task is COMPLETED and cannot be cancelled: it has already finished (1)" in texts[1]
    statuses = dict(Task.objects.values_list("pk", "status"))
    assert statuses[pending.pk] == statuses[claimed.pk] == "CANCELLED"
    assert statuses[running1.pk] == "RUNNING"
    assert statuses[done.pk] == "COMPLETED"


def test_reenqueue_creates_a_linked_copy(staff_client: Callable[..., Client]) -> None:
    failed = make_task("FAILED", kwargs={"a": 5, "b": 6}, error_code="BOOM")
    done = make_task("COMPLETED")
    c = staff_client("reenqueue_task")
    detail = c.get(f"{TASKS}{failed.pk}/change/").content.decode()
    assert 'data-action="reenqueue_tasks"' in detail
    assert (
        'data-action="reenqueue_tasks"' not in c.get(f"{TASKS}{done.pk}/change/").content.decode()
    )
    resp = post_action(c, "reenqueue_tasks", failed, done, confirm=True)
    copy = Task.objects.get(origin=failed.pk)
    assert copy.status == "PENDING"
    assert copy.kwargs == {"a": 5, "b": 6}
    texts = [str(m) for m in resp.context["messages"]]
    assert f'href="/admin/horsies_django/task/{copy.pk}/change/"' in texts[0]
    assert "Skipped 1: task is COMPLETED: only FAILED/CANCELLED/EXPIRED" in texts[1]
    assert Task.objects.get(pk=failed.pk).status == "FAILED"


def test_run_now_brings_a_waiting_task_forward(staff_client: Callable[..., Client]) -> None:
    later = timezone.now() + timedelta(hours=1)
    waiting = make_task("PENDING", enqueued_at=later, next_retry_at=later)
    ready = make_task("PENDING")
    c = staff_client("run_task_now")
    page = post_action(c, "run_tasks_now", waiting, ready).content.decode()
    assert "skipped: already eligible to run" in page
    resp = post_action(c, "run_tasks_now", waiting, ready, confirm=True)
    waiting.refresh_from_db()
    assert waiting.enqueued_at <= timezone.now()
    texts = [str(m) for m in resp.context["messages"]]
    assert texts[0] == "Brought forward 1 task."
    assert "already eligible to run" in texts[1]


def test_action_post_without_csrf_token_is_rejected() -> None:
    user = User.objects.create_superuser("csrf", "c@example.com", None)
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    task = make_task("PENDING")
    assert post_action(c, "cancel_tasks", task, confirm=True).status_code == 403
    task.refresh_from_db()
    assert task.status == "PENDING"


def test_action_works_for_a_real_sent_task(su_client: Client) -> None:
    handle = add.send(a=1, b=2).ok_value
    post_action(su_client, "cancel_tasks", Task.objects.get(pk=handle.task_id), confirm=True)
    assert Task.objects.get(pk=handle.task_id).status == "CANCELLED"


# ------------------------------------------------------------------------------ attempts, workers


def test_attempt_list_filters_and_search(su_client: Client) -> None:
    w1, w2 = make_worker(name="w1"), make_worker(name="w2")
    t1 = make_task("FAILED", id=fixed_id(1), task_name="tests.boom")
    t2 = make_task("COMPLETED", id=fixed_id(2))
    a1 = make_attempt(t1, 1, error_code="BOOM", error_message="kaboom", worker_id=w1.pk)
    a2 = make_attempt(t2, 1, outcome="COMPLETED", worker_id=w2.pk)

    def listed(query: dict[str, str]) -> set[str]:
        html = su_client.get(ATTEMPTS, query).content.decode()
        return set(re.findall(r'href="/admin/horsies_django/taskattempt/(\d+)/change/"', html))

    html = su_client.get(ATTEMPTS).content.decode()
    assert "tests.boom" in html
    assert "kaboom" in html
    assert 'class="hz-badge hz-completed"' in html
    assert {str(t1.pk), str(t2.pk)} <= ids_in(html.encode())
    assert ids_in(su_client.get(ATTEMPTS, {"outcome__exact": "FAILED"}).content) >= {str(t1.pk)}
    assert str(t2.pk) not in su_client.get(ATTEMPTS, {"outcome__exact": "FAILED"}).content.decode()
    by_code = su_client.get(ATTEMPTS, {"error_code": "BOOM"}).content.decode()
    assert str(t1.pk) in by_code
    assert str(t2.pk) not in by_code
    by_worker = su_client.get(ATTEMPTS, {"worker_id": str(w2.pk)}).content.decode()
    assert str(t2.pk) in by_worker
    assert str(t1.pk) not in by_worker
    found = su_client.get(ATTEMPTS, {"q": str(t1.pk)[:13]}).content.decode()
    assert str(t1.pk) in found
    assert str(t2.pk) not in found
    assert str(t1.pk) not in su_client.get(ATTEMPTS, {"q": "not-an-id"}).content.decode()
    detail = su_client.get(f"{ATTEMPTS}{a1.pk}/change/").content.decode()
    assert "kaboom" in detail
    assert f"/admin/horsies_django/task/{t1.pk}/change/" in detail
    assert a2.pk != a1.pk
    assert listed({}) == set()


def test_worker_list_shows_liveness_and_running_tasks_without_n_plus_one(
    su_client: Client,
) -> None:
    alive = make_worker(name="alive-1")
    stale = make_worker(name="stale-1", heartbeat_ago_s=3600)
    stopped = make_worker(name="gone-1", state="STOPPED", stopped_at=timezone.now())
    for status in ("RUNNING", "CLAIMED", "COMPLETED"):
        make_task(status, claimed_by=alive.pk)
    html = su_client.get(WORKERS).content.decode()
    for worker, badge in ((alive, "alive"), (stale, "stale"), (stopped, "stopped")):
        row = re.search(rf"{worker.name}.*?</tr>", html, re.S)
        assert row is not None, worker.name
        assert f'hz-badge hz-{badge}"' in row.group(0), worker.name
    row = re.search(r"alive-1.*?</tr>", html, re.S)
    assert row is not None
    running = re.search(r'field-running_now"><a href="([^"]+)">(\d+)</a>', row.group(0))
    assert running is not None
    assert running.group(2) == "2"
    listed = su_client.get(running.group(1).replace("&amp;", "&")).content
    assert len(ids_in(listed)) == 2
    for name, expected in (("alive", "alive-1"), ("stale", "stale-1"), ("stopped", "gone-1")):
        page = su_client.get(WORKERS, {"liveness": name}).content.decode()
        assert expected in page
        assert all(n not in page for n in ("alive-1", "stale-1", "gone-1") if n != expected)
    with CaptureQueriesContext(connection) as few:
        su_client.get(WORKERS)
    for i in range(5):
        make_worker(name=f"more-{i}")
    with CaptureQueriesContext(connection) as many:
        su_client.get(WORKERS)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_worker_list_and_page_show_why_a_worker_stopped(su_client: Client) -> None:
    reason = "the pool's children cannot set up Django:\nTraceback (most recent call last):\n..."
    stopped = make_worker(
        name="failed-1", state="STOPPED", stopped_at=timezone.now(), stop_reason=reason
    )
    html = su_client.get(WORKERS).content.decode()
    row = re.search(r"failed-1.*?</tr>", html, re.S)
    assert row is not None
    assert "the pool&#x27;s children cannot set up Django:" in row.group(0)
    assert "Traceback" not in row.group(0)  # the list shows the first line only
    page = su_client.get(f"{WORKERS}{stopped.pk}/change/").content.decode()
    assert "Traceback (most recent call last):" in page


def test_staff_without_view_permission_cannot_open_the_lists() -> None:
    user = User.objects.create_user("nobody", password=None, is_staff=True)
    c = Client()
    c.force_login(user)
    for url in (TASKS, ATTEMPTS, WORKERS):
        assert c.get(url).status_code == 403


# ------------------------------------------------------------------------------ 1M rows


# Indexes proposed for models.py (see docs/admin.md); created here, inside the test's
# transaction, only if the migrated schema does not have them yet.

# One INSERT ... SELECT: ids shaped like UUIDv7 (48-bit ms time prefix), one task a second,
# 1% FAILED with an error code, 0.1% PENDING, the rest COMPLETED.
BULK_INSERT = """
INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs, error_code,
    sent_at, enqueued_at, started_at, finished_at, retry_count, max_retries, options,
    enqueue_sha, claim_gen)
SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7000-8000-'
        || lpad(to_hex(g), 12, '0'))::uuid,
    'bulk.task_' || (g %% 20), 'default', 50,
    CASE WHEN g %% 1000 = 0 THEN 'PENDING' WHEN g %% 100 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
    jsonb_build_object('order_id', g),
    CASE WHEN g %% 100 = 0 AND g %% 1000 <> 0 THEN 'E_' || (g %% 7) END,
    now() - make_interval(secs => g), now() - make_interval(secs => g),
    CASE WHEN g %% 1000 <> 0 THEN now() - make_interval(secs => g - 1) END,
    CASE WHEN g %% 1000 <> 0 THEN now() - make_interval(secs => g - 2) END,
    0, 0, '{}', '', 0
FROM generate_series(1, %s) g,
    LATERAL (SELECT lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - g * 1000), 12, '0'))
        AS t(h)
"""


def fill_task_table(rows: int) -> None:
    """Bulk-load `rows` tasks inside the test transaction (rolled back afterwards).

    TRUNCATE first gives the insert a fresh file that the rollback discards; secondary indexes
    are dropped during the load and rebuilt from their own definitions, which is much faster.
    """
    with connection.cursor() as cur:
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cur.execute("TRUNCATE horsies_task_attempt, horsies_task")
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'horsies_task' "
            "AND indexname <> 'horsies_task_pkey'"
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute(BULK_INSERT, [rows])
        for _, ddl in indexes:
            cur.execute(ddl)
        cur.execute("ANALYZE horsies_task")


def seq_scans_of_task_table(captured: list[dict[str, Any]]) -> list[str]:
    """EXPLAIN every captured statement that reads horsies_task; return those that seq-scan it."""
    bad = []
    with connection.cursor() as cur:
        for query in captured:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")) or "horsies_task" not in sql:
                continue
            cur.execute("EXPLAIN " + sql)
            plan = "\n".join(r[0] for r in cur.fetchall())
            if re.search(r"Seq Scan on horsies_task(?!_)", plan):
                bad.append(f"{sql}\n{plan}")
    return bad


def test_task_list_stays_index_served_with_a_million_rows(su_client: Client) -> None:
    fill_task_table(1_000_000)
    some_id = str(Task.objects.filter(status="FAILED").values_list("pk", flat=True)[:1][0])
    year = str(timezone.now().year)
    urls = {
        "default view": {},
        "status filter": {"status__exact": "FAILED"},
        "id search": {"q": some_id},
        "id prefix search": {"q": some_id[:13]},
        "short id search": {"q": f"{some_id[:8]}…{some_id[-4:]}"},
        "task name filter": {"task_name": "bulk.task_3"},
        "error code filter": {"error_code": "E_3"},
        "finished filter": {"status__exact": "FAILED", "finished": "1h"},
        "date drill-down": {"sent_at__year": year},
    }
    for what, params in urls.items():
        with CaptureQueriesContext(connection) as ctx:
            resp = su_client.get(TASKS, params)
        assert resp.status_code == 200, what
        bad = seq_scans_of_task_table(ctx.captured_queries)
        assert not bad, f"{what} seq-scans horsies_task:\n" + "\n\n".join(bad)
    default = su_client.get(TASKS).content.decode()
    estimate = re.search(r"≈ ([\d,]+)</span> tasks", default)
    assert estimate is not None
    assert 900_000 <= int(estimate.group(1).replace(",", "")) <= 1_100_000
    assert re.search(
        r'hz-tile-value">≈ [\d,]+</span>\s*<span class="hz-tile-label">Completed', default
    )
    found = su_client.get(TASKS, {"q": some_id}).content
    assert ids_in(found) == {some_id}
