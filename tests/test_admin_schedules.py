"""The schedule admin: the list (last and next run in the schedule's timezone and UTC, last task,
run count), read-only rows, and "Run now" / "Enable" / "Disable" guarded by their permissions
and confirmed first."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from horsies_django.models import Schedule, Task
from horsies_django.schedules import Daily, Every
from horsies_django.schedules import Schedule as Declared
from horsies_django.schedules.firing import fire, slot_task_id, write_declared
from tests.conftest import database_url

pytestmark = pytest.mark.usefixtures("clean_tables")

SCHEDULES = "/admin/horsies_django/schedule/"
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PERMS = {
    "run_schedule_now": "Can run a schedule's task now",
    "toggle_schedule": "Can enable or disable a schedule",
}


def declared(*schedules: Declared, now: datetime = T0) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        write_declared(conn, {s.name: s for s in schedules}, now)


def nightly(**fields: Any) -> Declared:
    values: dict[str, Any] = {
        "name": "nightly",
        "task": "tests.add",
        "kwargs": {"a": 2, "b": 3},
        "pattern": Daily.model_validate({"at": "02:30"}),
        "timezone": "Europe/Berlin",
    }
    return Declared(**{**values, **fields})


@pytest.fixture
def su_client(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    return client


@pytest.fixture
def staff_client() -> Callable[..., Client]:
    def build(*codenames: str) -> Client:
        user = User.objects.create_user(f"staff{uuid.uuid4().hex[:6]}", is_staff=True)
        ct = ContentType.objects.get_for_model(Schedule)
        for code, name in [("view_schedule", "Can view schedule")] + [
            (c, PERMS[c]) for c in codenames
        ]:
            perm, _ = Permission.objects.get_or_create(
                content_type=ct, codename=code, defaults={"name": name}
            )
            user.user_permissions.add(perm)
        c = Client()
        c.force_login(user)
        return c

    return build


def post_action(c: Client, action: str, *names: str, confirm: bool = False) -> Any:
    data: dict[str, Any] = {"action": action, "_selected_action": list(names)}
    if confirm:
        data["post"] = "yes"
    else:
        data["index"] = "0"
    return c.post(SCHEDULES, data, follow=confirm)


def test_list_shows_runs_in_the_schedules_timezone_and_utc(su_client: Client) -> None:
    declared(nightly())
    every = Declared(name="often", task="tests.noop", pattern=Every(seconds=10))
    declared(nightly(), every)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        fire(conn, "often", datetime(2026, 12, 4, 12, 0, 10, tzinfo=UTC))
    page = su_client.get(SCHEDULES).content.decode()
    # nightly: next 02:30 in Berlin (CET, UTC+1) is 01:30 UTC on the 5th
    assert "2026-12-05 02:30:00" in page
    assert "Europe/Berlin" in page
    assert "2026-12-05 01:30:00 UTC" in page
    assert "daily 02:30" in page
    assert "every 10s" in page
    last = slot_task_id("often", datetime(2026, 12, 4, 12, 0, 10, tzinfo=UTC))
    assert f"/admin/horsies_django/task/{last}/change/" in page  # the last task, linked
    detail = su_client.get(f"{SCHEDULES}often/change/").content.decode()
    assert "tests.noop" in detail
    assert Schedule.objects.get(name="often").run_count == 1


def test_schedules_cannot_be_added_changed_or_deleted(su_client: Client) -> None:
    declared(nightly())
    assert su_client.get(f"{SCHEDULES}add/").status_code == 403
    assert su_client.post(f"{SCHEDULES}nightly/delete/", {"post": "yes"}).status_code == 403
    assert Schedule.objects.filter(name="nightly").exists()


@pytest.mark.parametrize("action", ["run_schedules_now", "enable_schedules", "disable_schedules"])
def test_an_action_without_its_permission_is_hidden_and_a_forged_post_is_403(
    staff_client: Callable[..., Client], action: str
) -> None:
    declared(nightly())
    needed = "run_schedule_now" if action == "run_schedules_now" else "toggle_schedule"
    c = staff_client(*(set(PERMS) - {needed}))
    assert f'value="{action}"' not in c.get(SCHEDULES).content.decode()
    assert post_action(c, action, "nightly").status_code == 403
    assert post_action(c, action, "nightly", confirm=True).status_code == 403
    assert Task.objects.count() == 0
    assert Schedule.objects.get(name="nightly").enabled is True


def test_run_now_asks_for_confirmation_then_sends_the_task(
    staff_client: Callable[..., Client],
) -> None:
    declared(nightly())
    c = staff_client("run_schedule_now")
    page = post_action(c, "run_schedules_now", "nightly").content.decode()
    assert "Run now: are you sure?" in page
    assert Task.objects.count() == 0
    resp = post_action(c, "run_schedules_now", "nightly", confirm=True)
    assert [str(m) for m in resp.context["messages"]] == ["Sent 1 schedule."]
    task = Task.objects.get()
    assert (task.task_name, task.kwargs, task.status) == ("tests.add", {"a": 2, "b": 3}, "PENDING")


def test_disable_then_enable_restarts_from_the_next_slot(
    staff_client: Callable[..., Client],
) -> None:
    declared(nightly())
    c = staff_client("toggle_schedule")
    resp = post_action(c, "disable_schedules", "nightly", confirm=True)
    assert [str(m) for m in resp.context["messages"]] == ["Disabled 1 schedule."]
    assert Schedule.objects.get(name="nightly").enabled is False
    resp = post_action(c, "disable_schedules", "nightly", confirm=True)
    assert "Skipped 1: disabled already (1)" in [str(m) for m in resp.context["messages"]]
    post_action(c, "enable_schedules", "nightly", confirm=True)
    row = Schedule.objects.get(name="nightly")
    assert (row.enabled, row.next_run_at) == (True, None)  # the next scheduler starts from now
    with psycopg.connect(database_url(), autocommit=True) as conn:
        later = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
        done = fire(conn, "nightly", later)
    assert done is not None
    assert done.fired == 0  # nothing fired for the days it was disabled
    assert done.next_run_at == datetime(2026, 12, 21, 1, 30, tzinfo=UTC)
