"""Workflows run: start, advancing in the database, joins, skipping, injection, on_error, success
policies, output, subworkflows, the handle. Most run their tasks in-process with
`run_pending()` (the same claim and outcome statement as a worker); the ones about waking,
retries and crashes run real workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from horsies_django import (
    OnError,
    SubWorkflowNode,
    SuccessCase,
    SuccessPolicy,
    TaskResult,
    WorkflowDefinition,
    WorkflowHandle,
    app,
    from_node,
)
from horsies_django.testing import run_pending
from tests.conftest import sql_rows
from tests.testapp.tasks import add, flaky
from tests.testapp.workflow_tasks import (
    ctx_reader,
    fail_int,
    fetch,
    maybe_total,
    recover,
    summary_reader,
    total,
)

pytestmark = pytest.mark.usefixtures("clean_tables")


def statuses(handle: WorkflowHandle) -> dict[str, str]:
    return {t.node_id: t.status for t in handle.tasks().ok_value}


def test_a_chain_passes_each_result_on_and_returns_the_output() -> None:
    f = fetch.node(node_id="fetch")(order_id=4)
    t = total.node(node_id="total")(amount=from_node(f), extra=2)
    handle = app.workflow("chain", tasks=[f, t], output=t).start().ok_value
    assert statuses(handle) == {"fetch": "ENQUEUED", "total": "PENDING"}
    ran = run_pending()
    assert [r.task_name for r in ran] == ["tests.wf.fetch", "tests.wf.total"]
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=42)
    assert handle.status().ok_value == "COMPLETED"
    assert statuses(handle) == {"fetch": "COMPLETED", "total": "COMPLETED"}
    assert handle.result_for("fetch") == TaskResult(ok=40)


def test_start_joins_the_callers_transaction_and_is_idempotent_by_id() -> None:
    spec = app.workflow("once", tasks=[add.node()(a=1, b=2)])
    with transaction.atomic():
        assert spec.start(workflow_id="0193a1c2-7d4e-7f00-8a00-0000000000f1").is_ok()
        transaction.set_rollback(True)
    assert sql_rows("SELECT count(*) FROM horsies_workflow") == [(0,)]
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(0,)]
    first = spec.start(workflow_id="0193a1c2-7d4e-7f00-8a00-0000000000f2").ok_value
    again = spec.start(workflow_id="0193a1c2-7d4e-7f00-8a00-0000000000f2").ok_value
    assert first.workflow_id == again.workflow_id
    assert sql_rows("SELECT count(*) FROM horsies_workflow") == [(1,)]
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(1,)]


def test_a_failure_skips_its_dependants_transitively_and_fails_the_workflow() -> None:
    bad = fail_int.node(node_id="bad")(code="OUT_OF_STOCK")
    after = total.node(node_id="after")(amount=from_node(bad))
    last = add.node(waits_for=[after], node_id="last")(a=1, b=1)
    side = add.node(node_id="side")(a=2, b=2)
    handle = app.workflow("failing", tasks=[bad, after, last, side]).start().ok_value
    run_pending()
    assert statuses(handle) == {
        "bad": "FAILED",
        "after": "SKIPPED",
        "last": "SKIPPED",
        "side": "COMPLETED",
    }
    result = handle.get(timeout_ms=5_000)
    assert result.unwrap_err().error_code == "OUT_OF_STOCK"
    assert handle.status().ok_value == "FAILED"


def test_allow_failed_deps_runs_a_recovery_node_with_the_failed_result() -> None:
    bad = fail_int.node(node_id="bad")(code="NO_LUCK")
    fix = recover.node(allow_failed_deps=True, node_id="fix")(amount=from_node(bad))
    handle = app.workflow("recovery", tasks=[bad, fix], output=fix).start().ok_value
    run_pending()
    assert statuses(handle)["fix"] == "COMPLETED"
    assert handle.result_for("fix") == TaskResult(ok="recovered from NO_LUCK")
    # Without a success policy, any failed node fails the workflow (WORKFLOWS.md).
    assert handle.get(timeout_ms=5_000).unwrap_err().error_code == "NO_LUCK"


def test_any_join_runs_at_the_first_success_with_the_default_for_the_rest() -> None:
    bad = fail_int.node(node_id="bad")(code="X")
    good = fetch.node(node_id="good")(order_id=1)
    first = maybe_total.node(waits_for=[bad, good], join="any", node_id="first")()
    policy = SuccessPolicy(cases=[SuccessCase(required=[first])])
    spec = app.workflow("any", tasks=[bad, good, first], output=first, success_policy=policy)
    handle = spec.start().ok_value
    run_pending()
    assert statuses(handle)["first"] == "COMPLETED"
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=0)


def test_quorum_is_skipped_as_soon_as_it_cannot_be_reached() -> None:
    nodes = [fail_int.node(node_id=f"f{i}")(code="X") for i in range(2)]
    nodes.append(fetch.node(node_id="ok")(order_id=1))
    vote = add.node(waits_for=nodes, join="quorum", min_success=2, node_id="vote")(a=1, b=1)
    handle = app.workflow("quorum", tasks=[*nodes, vote]).start().ok_value
    run_pending()
    assert statuses(handle)["vote"] == "SKIPPED"


def test_quorum_runs_when_enough_dependencies_succeed() -> None:
    nodes = [fetch.node(node_id=f"ok{i}")(order_id=i) for i in range(2)]
    nodes.append(fail_int.node(node_id="bad")(code="X"))
    vote = add.node(waits_for=nodes, join="quorum", min_success=2, node_id="vote")(a=1, b=1)
    policy = SuccessPolicy(cases=[SuccessCase(required=[vote])])
    spec = app.workflow("quorum", tasks=[*nodes, vote], output=vote, success_policy=policy)
    handle = spec.start().ok_value
    run_pending()
    assert statuses(handle)["vote"] == "COMPLETED"
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=2)


def test_without_output_the_result_is_every_sink_nodes_result() -> None:
    a = fetch.node(node_id="a")(order_id=1)
    b = total.node(node_id="b")(amount=from_node(a))
    c = add.node(node_id="c")(a=5, b=5)
    handle = app.workflow("sinks", tasks=[a, b, c]).start().ok_value
    run_pending()
    assert handle.get(timeout_ms=5_000) == TaskResult(
        ok={"b": TaskResult(ok=10), "c": TaskResult(ok=10)}
    )


def test_workflow_ctx_holds_the_listed_results() -> None:
    f = fetch.node(node_id="fetch")(order_id=3)
    reader = ctx_reader.node(waits_for=[f], workflow_ctx_from=[f], node_id="reader")()
    handle = app.workflow("ctx", tasks=[f, reader], output=reader).start().ok_value
    run_pending()
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=31)  # 30 + its index 1


def test_success_policy_completes_despite_an_optional_failure() -> None:
    must = fetch.node(node_id="must")(order_id=1)
    maybe = fail_int.node(node_id="maybe")(code="FLAKY")
    policy = SuccessPolicy(cases=[SuccessCase(required=[must])], optional=[maybe])
    handle = (
        app.workflow("policy", tasks=[must, maybe], output=must, success_policy=policy)
        .start()
        .ok_value
    )
    run_pending()
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=10)


def test_success_policy_not_met_fails_with_the_first_failed_required_node() -> None:
    must = fail_int.node(node_id="must")(code="BROKEN")
    other = fetch.node(node_id="other")(order_id=1)
    policy = SuccessPolicy(cases=[SuccessCase(required=[must, other])])
    handle = app.workflow("policy", tasks=[must, other], success_policy=policy).start().ok_value
    run_pending()
    assert handle.get(timeout_ms=5_000).unwrap_err().error_code == "BROKEN"


def test_on_error_pause_stops_new_work_until_resumed() -> None:
    bad = fail_int.node(node_id="bad")(code="HALT")
    gate = fetch.node(node_id="gate")(order_id=1)
    later = add.node(waits_for=[gate], node_id="later")(a=1, b=1)
    handle = (
        app.workflow("pausing", tasks=[bad, gate, later], on_error=OnError.PAUSE).start().ok_value
    )
    run_pending(task_names=["tests.wf.fail_int"])
    assert handle.status().ok_value == "PAUSED"
    assert handle.get(timeout_ms=5_000).unwrap_err().error_code == "WORKFLOW_PAUSED"
    assert statuses(handle)["gate"] == "READY"  # its task was abandoned, a fresh one on resume
    assert [r.task_name for r in run_pending()] == []
    assert handle.resume().ok_value is True
    assert handle.resume().ok_value is False
    run_pending()
    assert statuses(handle) == {"bad": "FAILED", "gate": "COMPLETED", "later": "COMPLETED"}
    assert handle.get(timeout_ms=5_000).unwrap_err().error_code == "HALT"


def test_cancel_skips_what_has_not_run_and_cancels_its_tasks() -> None:
    first = fetch.node(node_id="first")(order_id=1)
    second = total.node(node_id="second")(amount=from_node(first))
    handle = app.workflow("cancelled", tasks=[first, second]).start().ok_value
    assert handle.cancel().ok_value is True
    assert handle.cancel().ok_value is False  # idempotent
    assert statuses(handle) == {"first": "SKIPPED", "second": "SKIPPED"}
    assert sql_rows("SELECT status FROM horsies_task") == [("CANCELLED",)]
    assert run_pending() == []
    assert handle.get(timeout_ms=5_000).unwrap_err().error_code == "WORKFLOW_CANCELLED"


def test_a_node_past_its_good_until_fails_with_task_expired() -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    late = fetch.node(good_until=past, node_id="late")(order_id=1)
    handle = app.workflow("late", tasks=[late]).start().ok_value
    sql_rows("SELECT 1 FROM horsies_task")  # the expirer runs on workers; here, by hand:
    sql_rows(
        "UPDATE horsies_task SET status = 'EXPIRED', error_code = 'TASK_EXPIRED', "
        "finished_at = now() WHERE good_until <= now() RETURNING 1"
    )
    assert statuses(handle) == {"late": "FAILED"}
    assert handle.get(timeout_ms=5_000).unwrap_err().error_code == "TASK_EXPIRED"


class Leaf(WorkflowDefinition[int]):
    definition_key = "tests.wf.leaf"
    one = fetch.node()(order_id=1)

    class Meta:
        output = "one"


class Middle(WorkflowDefinition[int]):
    definition_key = "tests.wf.middle"
    leaf = SubWorkflowNode(Leaf)

    class Meta:
        output = "leaf"


class Top(WorkflowDefinition[int]):
    definition_key = "tests.wf.top"
    middle = SubWorkflowNode(Middle)
    after = add.node(waits_for=[middle])(a=1, b=2)

    class Meta:
        output = "middle"


def test_subworkflows_nested_three_deep_finish_their_parents() -> None:
    handle = Top.build().start().ok_value
    run_pending()
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=10)
    depths = sql_rows("SELECT depth, status FROM horsies_workflow ORDER BY depth")
    assert depths == [(0, "COMPLETED"), (1, "COMPLETED"), (2, "COMPLETED")]


def test_a_worker_runs_a_workflow_and_get_wakes_when_it_ends(start_worker: Any) -> None:
    f = fetch.node(node_id="fetch")(order_id=4)
    t = total.node(node_id="total")(amount=from_node(f), extra=2)
    handle = app.workflow("on a worker", tasks=[f, t], output=t).start().ok_value
    start_worker()
    assert handle.get(timeout_ms=30_000) == TaskResult(ok=42)


def test_retries_inside_a_node_keep_it_running(start_worker: Any, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    node = flaky.node(node_id="flaky")(counter=str(counter), failures=1)
    handle = app.workflow("retrying", tasks=[node], output=node).start().ok_value
    start_worker()
    assert handle.get(timeout_ms=30_000) == TaskResult(ok=2)
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(1,)]  # one task, two attempts
    assert sql_rows("SELECT count(*) FROM horsies_task_attempt") == [(2,)]


def test_pause_resume_and_cancel_reach_child_workflows() -> None:
    handle = Top.build().start().ok_value
    child_status = "SELECT status FROM horsies_workflow WHERE depth = %s"
    assert sql_rows(child_status, 1) == [("RUNNING",)]
    assert handle.pause().ok_value is True
    assert sql_rows(child_status, 1) == [("PAUSED",)]
    assert sql_rows(child_status, 2) == [("PAUSED",)]
    assert run_pending() == []  # the leaf's task was withdrawn while paused
    assert handle.resume().ok_value is True
    assert sql_rows(child_status, 2) == [("RUNNING",)]
    assert handle.cancel().ok_value is True
    assert sql_rows("SELECT DISTINCT status FROM horsies_workflow") == [("CANCELLED",)]
    assert sql_rows("SELECT DISTINCT status FROM horsies_task") == [("CANCELLED",)]


def test_retry_start_starts_a_failed_start_once_and_refuses_other_errors() -> None:
    from horsies_django import WorkflowStartError

    spec = app.workflow("retried", tasks=[add.node()(a=1, b=1)])
    lost = WorkflowStartError(
        "ENQUEUE_FAILED", "connection lost", True, "retried", "0193a1c2-7d4e-7f00-8a00-0000000000f3"
    )
    first = spec.retry_start(lost).ok_value
    again = spec.retry_start(lost).ok_value
    assert first.workflow_id == again.workflow_id == lost.workflow_id
    assert sql_rows("SELECT count(*) FROM horsies_workflow") == [(1,)]
    invalid = WorkflowStartError("VALIDATION_FAILED", "bad", False, "retried", None)
    refused = spec.retry_start(invalid)
    assert refused.is_err()
    assert "only ENQUEUE_FAILED can be retried" in refused.err_value.message


def test_get_times_out_and_an_unknown_workflow_is_not_found() -> None:
    handle = app.workflow("waiting", tasks=[add.node()(a=1, b=1)]).start().ok_value
    assert handle.get(timeout_ms=50).unwrap_err().error_code == "WAIT_TIMEOUT"
    assert handle.result_for("nope").unwrap_err().error_code == "WORKFLOW_NOT_FOUND"
    missing = WorkflowHandle.from_id("0193a1c2-7d4e-7f00-8a00-0000000000f4")
    assert missing.get(timeout_ms=50).unwrap_err().error_code == "WORKFLOW_NOT_FOUND"
    assert missing.status().ok_value is None


def test_the_async_twins_answer_like_the_methods() -> None:
    import asyncio

    from asgiref.sync import sync_to_async

    async def twins() -> None:
        spec = app.workflow("async", tasks=[add.node(node_id="sum")(a=2, b=3)], output="sum")
        handle = (await spec.start_async()).ok_value
        assert (await handle.status_async()).ok_value == "RUNNING"
        await sync_to_async(run_pending)()
        assert await handle.get_async(timeout_ms=5_000) == TaskResult(ok=5)
        assert (await handle.result_for_async("sum")) == TaskResult(ok=5)
        assert (await handle.results_async()).ok_value == {"sum": TaskResult(ok=5)}
        assert [t.status for t in (await handle.tasks_async()).ok_value] == ["COMPLETED"]
        assert (await handle.cancel_async()).ok_value is False
        assert (await handle.pause_async()).ok_value is False
        assert (await handle.resume_async()).ok_value is False

    asyncio.run(twins())


def test_a_skipped_dependency_arrives_as_upstream_skipped() -> None:
    bad = fail_int.node(node_id="bad")(code="GONE")
    skipped = total.node(node_id="skipped")(amount=from_node(bad))
    fix = recover.node(allow_failed_deps=True, node_id="fix")(amount=from_node(skipped))
    handle = app.workflow("skips", tasks=[bad, skipped, fix]).start().ok_value
    run_pending()
    assert statuses(handle) == {"bad": "FAILED", "skipped": "SKIPPED", "fix": "COMPLETED"}
    assert handle.result_for("fix") == TaskResult(ok="recovered from UPSTREAM_SKIPPED")


def test_result_for_takes_nodes_without_explicit_ids() -> None:
    f = fetch.node()(order_id=4)
    t = total.node()(amount=from_node(f))
    handle = app.workflow("default ids", tasks=[f, t]).start().ok_value
    run_pending()
    assert handle.result_for(f) == handle.result_for("default-ids:0") == TaskResult(ok=40)
    class_handle = Top.build().start().ok_value
    run_pending()
    assert class_handle.result_for(Top.after) == TaskResult(ok=3)


def test_an_output_node_skipped_under_a_met_success_policy_is_an_error_not_nothing() -> None:
    bad = fail_int.node(node_id="bad")(code="X")
    after = total.node(node_id="after")(amount=from_node(bad))
    fix = recover.node(allow_failed_deps=True, node_id="fix")(amount=from_node(bad))
    policy = SuccessPolicy(cases=[SuccessCase(required=[after]), SuccessCase(required=[fix])])
    spec = app.workflow("o", tasks=[bad, after, fix], output=after, success_policy=policy)
    handle = spec.start().ok_value
    run_pending()
    assert handle.status().ok_value == "COMPLETED"
    error = handle.get(timeout_ms=5_000).unwrap_err()
    assert error.error_code == "UPSTREAM_SKIPPED"
    assert "output node after was skipped" in error.message


def test_the_context_summarises_a_listed_subworkflow() -> None:
    child = SubWorkflowNode(Middle, node_id="child")
    reader = summary_reader.node(waits_for=[child], workflow_ctx_from=[child], node_id="r")()
    handle = app.workflow("summaries", tasks=[child, reader], output=reader).start().ok_value
    run_pending()
    summary = handle.get(timeout_ms=5_000).ok_value
    assert summary == {
        "status": "COMPLETED",
        "output": 10,
        "total": 1,
        "completed": 1,
        "same_as_result": True,
    }


def test_a_bad_workflow_id_or_timeout_is_refused_not_retried() -> None:
    refused = app.workflow("bad id", tasks=[add.node()(a=1, b=1)]).start(workflow_id="abc")
    assert refused.is_err()
    assert (refused.err_value.code, refused.err_value.retryable) == ("VALIDATION_FAILED", False)
    assert "is not a UUID" in refused.err_value.message
    handle = app.workflow("waits", tasks=[add.node()(a=1, b=1)]).start().ok_value
    for timeout in (-1, float("nan"), "soon", True):
        assert handle.get(timeout_ms=timeout).unwrap_err().error_code == "INVALID_TIMEOUT"
