"""The many-hosts harness's pure parts (benchmarks/hosts): names and addresses of the hosts,
the rates of a drain series, and the exactly-once verdict read from task, attempt and run
rows written here into the test database. Needs no namespaces and no root."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from benchmarks.hosts import drain, records, report
from benchmarks.hosts.naming import Host, hba_lines, hosts, is_ours, listen_addresses
from benchmarks.hosts.queues import CAPS, CLUSTER_WIDE_CAP, capped
from benchmarks.hosts.sampling import running_maxima, wait_event_shares
from horsies_django.models import Task, TaskAttempt

CUT_WORKER = str(uuid.uuid4())
OTHER_WORKER = str(uuid.uuid4())


def test_each_host_has_its_own_link_and_addresses() -> None:
    two = hosts(2)
    assert [h.netns for h in two] == ["hzh-host1", "hzh-host2"]
    assert [(h.veth_outside, h.veth_inside) for h in two] == [
        ("hzh1o", "hzh1i"),
        ("hzh2o", "hzh2i"),
    ]
    assert [(h.outside_address, h.inside_address) for h in two] == [
        ("10.77.1.1", "10.77.1.2"),
        ("10.77.2.1", "10.77.2.2"),
    ]
    assert all(len(h.veth_outside) <= 15 for h in hosts(250))  # IFNAMSIZ - 1
    assert all(is_ours(name) for h in two for name in (h.netns, h.veth_outside, h.veth_inside))
    assert not is_ours("eth0")
    with pytest.raises(ValueError, match="host index"):
        Host(0)


def test_postgres_listens_on_loopback_and_each_outside_end_and_trusts_only_the_hosts() -> None:
    two = hosts(2)
    assert listen_addresses(two) == "127.0.0.1,10.77.1.1,10.77.2.1"
    assert hba_lines(two, "u") == [
        "host all u 127.0.0.1/32 trust",
        "host all u 10.77.1.2/32 trust",
        "host all u 10.77.2.2/32 trust",
    ]


def test_the_caps_phase_caps_two_queues_and_the_cluster() -> None:
    settings = capped()
    caps = {q["name"]: q.get("max_concurrency") for q in settings["CUSTOM_QUEUES"]}
    assert caps == {"drain": None, **CAPS, "recover": None}
    assert settings["CLUSTER_WIDE_CAP"] == CLUSTER_WIDE_CAP < sum(CAPS.values())


def test_drain_rates_interpolate_between_polls() -> None:
    series = [(0.0, 100), (1.0, 100), (2.0, 50), (3.0, 0)]
    assert drain.crossing(series, 90) == pytest.approx(1.2)
    assert drain.crossing(series, 10) == pytest.approx(2.8)
    rates = drain.rates(series, 100)
    assert rates["drain_10_90_per_s"] == pytest.approx(80 / 1.6)
    assert rates["drain_incl_startup_per_s"] == pytest.approx(33.3)
    assert rates["first_completion_s"] == pytest.approx(1.02)


def test_samples_fold_into_maxima_and_shares() -> None:
    samples = [{"cap_a": 2, "cap_b": 1}, {"cap_b": 3}, {}]
    assert running_maxima(samples) == {"*": 3, "cap_a": 2, "cap_b": 3}
    shares = wait_event_shares([{"CPU": 3, "IO:WALSync": 1}])
    assert shares == {"CPU": 0.75, "IO:WALSync": 0.25}


def task(i: int, status: str = "COMPLETED") -> Task:
    now = timezone.now()
    return Task.objects.create(
        id=uuid.uuid4(), task_name="hosts.recorded", queue_name="recover", status=status,
        kwargs={"i": i, "ms": 1}, sent_at=now, enqueued_at=now, enqueue_sha="x" * 64,
    )  # fmt: skip


def attempt(t: Task, n: int, outcome: str, worker: str, started_s: float) -> None:
    base = timezone.now() - timedelta(minutes=1)
    TaskAttempt.objects.create(
        task=t, attempt=n, outcome=outcome, worker_id=worker,
        started_at=base + timedelta(seconds=started_s),
        finished_at=base + timedelta(seconds=started_s + 1),
    )  # fmt: skip


def runs(i: int, count: int) -> None:
    with connection.cursor() as cur:
        for _ in range(count):
            records.record_run(cur, i, "host1", 1)


@pytest.mark.django_db
def test_the_verdict_tells_an_allowed_second_run_from_bugs() -> None:
    with connection.cursor() as cur:
        records.create_runs_table(cur)
        records.clear_runs(cur)
    # 0: ran once, completed once: fine.
    attempt(task(0), 1, "COMPLETED", OTHER_WORKER, 0)
    runs(0, 1)
    # 1: its host was cut off mid-run: crashed (recovered), retried and completed elsewhere,
    # and the cut-off run finished too: two runs, allowed and reported.
    t1 = task(1)
    attempt(t1, 1, "CRASHED", CUT_WORKER, 0)
    attempt(t1, 2, "COMPLETED", OTHER_WORKER, 5)
    runs(1, 2)
    # 2: ran twice without any recovery: a bug.
    attempt(task(2), 1, "COMPLETED", OTHER_WORKER, 0)
    runs(2, 2)
    # 3: never finished (lost).
    task(3, status="PENDING")
    runs(3, 1)
    # 4: recovered, but the recorded success is the cut-off run's (started before the
    # recovery): a late outcome got through the fence.
    t4 = task(4)
    attempt(t4, 1, "CRASHED", CUT_WORKER, 10)
    attempt(t4, 2, "COMPLETED", CUT_WORKER, 0)
    runs(4, 1)
    # 5: two successful attempts recorded.
    t5 = task(5)
    attempt(t5, 1, "COMPLETED", OTHER_WORKER, 0)
    attempt(t5, 2, "COMPLETED", OTHER_WORKER, 5)
    runs(5, 1)
    # 6: completed but no execution recorded.
    attempt(task(6), 1, "COMPLETED", OTHER_WORKER, 0)

    with connection.cursor() as cur:
        verdict = records.judge(records.task_records(cur, "hosts.recorded", [CUT_WORKER]))

    assert verdict.tasks == 7
    assert verdict.runs == 8
    assert verdict.recovered == [1, 4]
    assert verdict.ran_twice_recovered == [1]
    assert verdict.ran_twice_unexplained == [2]
    assert verdict.lost == [3]
    assert verdict.late_outcome_accepted == [4]
    assert verdict.outcome_not_once == [3, 5]
    assert verdict.never_ran == [6]
    assert not verdict.ok
    summary = verdict.summary()
    assert summary["ran_twice_recovered"] == 1
    assert summary["examples"]["ran_twice_unexplained"] == [2]


@pytest.mark.django_db
def test_a_clean_recovery_is_ok() -> None:
    with connection.cursor() as cur:
        records.create_runs_table(cur)
        records.clear_runs(cur)
    t = task(0)
    attempt(t, 1, "CRASHED", CUT_WORKER, 0)
    attempt(t, 2, "COMPLETED", OTHER_WORKER, 5)
    runs(0, 1)
    with connection.cursor() as cur:
        verdict = records.judge(records.task_records(cur, "hosts.recorded", [CUT_WORKER]))
    assert verdict.ok
    assert verdict.summary()["recovered_from_cut_host"] == 1


def test_scaling_is_the_median_of_same_repeat_ratios() -> None:
    drains = [
        {"repeat": 0, "hosts": 1, "drain_10_90_per_s": 100.0},
        {"repeat": 0, "hosts": 2, "drain_10_90_per_s": 150.0},
        {"repeat": 1, "hosts": 1, "drain_10_90_per_s": 200.0},
        {"repeat": 1, "hosts": 2, "drain_10_90_per_s": 220.0},
        {"repeat": 2, "hosts": 1, "drain_10_90_per_s": 100.0},
        {"repeat": 2, "hosts": 2, "drain_10_90_per_s": 130.0},
    ]
    assert report.same_repeat_ratio(drains, 2) == pytest.approx(1.3)
    assert report.same_repeat_ratio(drains, 1) == 1.0
