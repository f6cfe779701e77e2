"""Workflow authoring: both styles, the flattened spec, and one test per validation rule.

Pure unit tests: specs are built and checked, nothing is started or written.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import override_settings

from horsies_django import (
    OnError,
    SubWorkflowNode,
    SuccessCase,
    SuccessPolicy,
    TaskError,
    TaskResult,
    WorkflowContext,
    WorkflowDefinition,
    WorkflowMeta,
    WorkflowValidationError,
    app,
    from_node,
)
from horsies_django.exceptions import HorsiesError
from horsies_django.workflows import param
from horsies_django.workflows.spec import definition_table
from tests.testapp import workflow_tasks as t
from tests.testapp.workflow_tasks import Receipt


@pytest.fixture(autouse=True)
def _forget_definitions() -> Iterator[None]:
    """Definition classes made by a test are forgotten after it (keys are global)."""
    before = dict(definition_table)
    yield
    definition_table.clear()
    definition_table.update(before)


def problems(build: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        build(*args, **kwargs)
    assert isinstance(caught.value, HorsiesError)
    return caught.value.problems


def only(build: Any, *args: Any, **kwargs: Any) -> str:
    found = problems(build, *args, **kwargs)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- both styles


def test_function_style_builds_a_flat_indexed_spec() -> None:
    a = t.fetch.node()(order_id=1)
    b = t.total.node(priority=5)(amount=from_node(a), extra=2)
    spec = app.workflow("Order flow", tasks=[a, b], output=b)
    assert [n.node_id for n in spec.nodes] == ["Order-flow:0", "Order-flow:1"]
    first, second = spec.nodes
    assert (first.kind, first.task_name, first.kwargs_json) == (
        "task",
        "tests.wf.fetch",
        '{"order_id":1}',
    )
    assert second.waits_for == (0,)
    assert second.args_from == (("amount", 0),)
    assert second.kwargs_json == '{"extra":2}'  # args_from parameters are not in kwargs
    assert (second.priority, second.queue_name, second.join) == (5, "default", "all")
    assert spec.output_index == 1
    assert spec.on_error is OnError.FAIL
    assert spec.success_policy is None


def test_class_style_ids_are_attribute_names_and_build_is_fresh() -> None:
    class Checkout(WorkflowDefinition[int]):
        definition_key = "tests.checkout"
        fetch = t.fetch.node()(order_id=param("order_id", 7))
        sum = t.total.node()(amount=from_node(fetch))

        class Meta:
            output = "sum"
            on_error = OnError.PAUSE

    spec = Checkout.build()
    assert [n.node_id for n in spec.nodes] == ["fetch", "sum"]
    assert spec.definition_key == "tests.checkout"
    assert spec.on_error is OnError.PAUSE
    assert spec.nodes[0].kwargs_json == '{"order_id":7}'
    other = Checkout.build_with(order_id=9)
    assert other.nodes[0].kwargs_json == '{"order_id":9}'
    assert other is not spec
    assert spec.nodes[0].kwargs_json == '{"order_id":7}'


def test_spec_is_frozen() -> None:
    spec = app.workflow("w", tasks=[t.name.node()()])
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]


def test_start_is_delegated_to_the_starting_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from horsies_django.workflows import spec as spec_module

    calls: list[tuple[Any, ...]] = []

    class Starter:
        @staticmethod
        def start(spec: Any, workflow_id: str | None) -> str:
            calls.append((spec, workflow_id))
            return "started"

    monkeypatch.setattr(spec_module, "_starter", Starter)
    spec = app.workflow("w", tasks=[t.name.node()()])
    assert spec.start("wf-1") == "started"
    assert calls == [(spec, "wf-1")]


def test_engine_parameters_are_flagged_and_ctx_sources_indexed() -> None:
    a = t.name.node()()
    c = t.with_ctx.node(waits_for=[a], workflow_ctx_from=[a])()
    spec = app.workflow("ctx", tasks=[a, c])
    assert (spec.nodes[1].wants_ctx, spec.nodes[1].wants_meta) == (True, True)
    assert spec.nodes[1].workflow_ctx_from == (0,)
    assert spec.nodes[0].wants_ctx is False


def test_success_policy_is_flattened_to_indices() -> None:
    a, b, c = t.name.node()(), t.name.node()(), t.name.node()()
    policy = SuccessPolicy(cases=[SuccessCase(required=[a, "p:2"])], optional=[b])
    spec = app.workflow("p", tasks=[a, b, c], success_policy=policy)
    assert spec.success_policy == ((0, 2),)
    assert spec.optional_indices == (1,)


def test_subworkflow_node_is_flattened_with_its_key_and_parameters() -> None:
    class Child(WorkflowDefinition[int]):
        definition_key = "tests.child"
        fetch = t.fetch.node()(order_id=param("order_id"))

        class Meta:
            output = "fetch"

    first = t.name.node()()
    sub = SubWorkflowNode(Child, kwargs={"order_id": 3}, waits_for=[first])
    use = t.total.node()(amount=from_node(sub))
    spec = app.workflow("parent", tasks=[first, sub, use])
    node = spec.nodes[1]
    assert (node.kind, node.sub_definition_key, node.sub_kwargs_json) == (
        "subworkflow",
        "tests.child",
        '{"order_id":3}',
    )
    assert node.task_name is None
    assert node.kwargs_json is None
    assert spec.nodes[2].args_from == (("amount", 1),)


def test_context_and_meta_are_built_from_dicts() -> None:
    ctx = WorkflowContext.from_json(
        {
            "workflow_id": "w1",
            "task_index": 2,
            "task_name": "tests.wf.with_ctx",
            "results": {"a": {"ok": 5}, "b": TaskResult(err=TaskError(message="no"))},
            "summaries": {"s": {"workflow_id": "w2", "status": "COMPLETED", "output": {"ok": 1}}},
        }
    )
    assert ctx.result_for("a") == TaskResult(ok=5)
    assert ctx.has_result("b")
    assert not ctx.has_result("c")
    with pytest.raises(KeyError, match="workflow_ctx_from"):
        ctx.result_for("c")
    assert ctx.summary_for("s").output == TaskResult(ok=1)
    meta = WorkflowMeta.from_json({"workflow_id": "w1", "task_index": 0, "task_name": "x"})
    assert meta == WorkflowMeta("w1", 0, "x")


def test_all_problems_are_reported_at_once() -> None:
    a = t.fetch.node(node_id="bad id!")()
    b = t.name.node(priority=0)(nope=1)
    assert len(problems(app.workflow, "many", tasks=[a, b])) == 4


# --------------------------------------------------------------------------- one test per rule


def test_rule_empty_workflow() -> None:
    assert "empty" in only(app.workflow, "w", tasks=[])


def test_rule_bad_node_id() -> None:
    message = only(app.workflow, "w", tasks=[t.name.node(node_id="no spaces")()])
    assert "'no spaces'" in message
    assert "A-Z a-z 0-9" in message
    message = only(app.workflow, "w", tasks=[t.name.node(node_id="x" * 129)()])
    assert "at most 128" in message


def test_rule_duplicate_node_id() -> None:
    a, b = t.name.node(node_id="same")(), t.name.node(node_id="same")()
    assert "'same' is used by the nodes at positions 0 and 1" in only(
        app.workflow, "w", tasks=[a, b]
    )
    assert "listed twice" in only(app.workflow, "w", tasks=[a, a])


def test_rule_no_root() -> None:
    class Loop(WorkflowDefinition[Any]):
        definition_key = "tests.loop"
        a = t.name.node()()

    Loop.a.waits_for = (Loop.a,)
    found = problems(Loop.build)
    assert any("no root" in p for p in found)


def test_rule_unknown_dependency() -> None:
    stranger = t.name.node(node_id="stranger")()
    b = t.name.node(waits_for=[stranger])()
    message = only(app.workflow, "w", tasks=[b])
    assert "node 'w:0' waits for node 'stranger' that is not in this workflow" in message


def test_rule_cycle_names_its_nodes() -> None:
    root = t.name.node(node_id="root")()
    a = t.name.node(node_id="a", waits_for=[root])()
    b = t.name.node(node_id="b", waits_for=[a])()
    a.waits_for = (root, b)
    assert "nodes form a cycle: a -> b -> a" in only(app.workflow, "w", tasks=[root, a, b])


def test_rule_args_from_source_not_in_waits_for() -> None:
    a = t.fetch.node(node_id="a")(order_id=1)
    b = t.total.node(node_id="b", args_from={"amount": a})()
    message = only(app.workflow, "w", tasks=[a, b])
    assert "node 'b': args_from['amount'] names node 'a', which is not in its waits_for" in message


def test_rule_workflow_ctx_from_source_not_in_waits_for() -> None:
    a = t.name.node(node_id="a")()
    c = t.with_ctx.node(node_id="c", workflow_ctx_from=[a])()
    assert "workflow_ctx_from names node 'a'" in only(app.workflow, "w", tasks=[a, c])


def test_rule_quorum_bounds() -> None:
    a, b = t.name.node()(), t.name.node()()
    for bad in (None, 0, 3):
        c = t.name.node(waits_for=[a, b], join="quorum", min_success=bad)()
        assert "min_success from 1 to len(waits_for) = 2" in only(
            app.workflow, "w", tasks=[a, b, c]
        )
    c = t.name.node(waits_for=[a, b], min_success=1)()
    assert "min_success is only for join='quorum'" in only(app.workflow, "w", tasks=[a, b, c])


def test_rule_join_value_unknown() -> None:
    a = t.name.node()()
    b = t.name.node(waits_for=[a], join="some")()
    assert "join='some' is unknown" in only(app.workflow, "w", tasks=[a, b])


def test_rule_any_and_quorum_args_from_targets_need_a_default() -> None:
    a = t.fetch.node()(order_id=1)
    b = t.strict_total.node(join="any")(amount=from_node(a))
    assert "args_from parameter 'amount' needs a default" in only(app.workflow, "w", tasks=[a, b])
    ok = t.maybe_total.node(join="any")(amount=from_node(a))
    app.workflow("w", tasks=[a, ok])


def test_rule_unknown_kwargs() -> None:
    message = only(app.workflow, "w", tasks=[t.name.node()(nope=1)])
    assert "unknown argument 'nope'" in message
    assert "takes who" in message


def test_rule_missing_kwargs() -> None:
    message = only(app.workflow, "w", tasks=[t.fetch.node()()])
    assert "missing argument(s) order_id of task 'tests.wf.fetch'" in message


def test_rule_engine_parameters_are_not_kwargs() -> None:
    message = only(app.workflow, "w", tasks=[t.with_ctx.node()(workflow_ctx=None)])
    assert "'workflow_ctx' is filled by the workflow" in message


def test_rule_kwargs_and_args_from_overlap() -> None:
    a = t.fetch.node()(order_id=1)
    b = t.untyped_input.node(waits_for=[a], args_from={"amount": a})(amount=3)
    found = problems(app.workflow, "w", tasks=[a, b])
    assert any("given both in kwargs and in args_from" in p for p in found)


def test_rule_args_from_parameter_must_be_a_task_result() -> None:
    a = t.fetch.node()(order_id=1)
    b = t.untyped_input.node()(amount=from_node(a))
    message = only(app.workflow, "w", tasks=[a, b])
    assert "is annotated int; declare `amount: TaskResult[int, TaskError]`" in message


def test_rule_args_from_ok_type_must_match() -> None:
    a = t.fetch.node()(order_id=1)
    b = t.label.node()(text=from_node(a))
    message = only(app.workflow, "w", tasks=[a, b])
    assert (
        "returns TaskResult[int, TaskError]; declare `text: TaskResult[int, TaskError]`" in message
    )


def test_rule_any_on_either_side_matches() -> None:
    @app.task("tests.wf.any_result")
    def any_result(*, x: TaskResult[Any, TaskError]) -> TaskResult[Any, TaskError]:
        return x

    try:
        a = t.fetch.node()(order_id=1)
        b = any_result.node()(x=from_node(a))
        c = t.label.node()(text=from_node(b))
        app.workflow("w", tasks=[a, b, c])
    finally:
        app.unregister("tests.wf.any_result")


def test_rule_workflow_ctx_from_needs_a_ctx_parameter() -> None:
    a = t.name.node()()
    b = t.name.node(waits_for=[a], workflow_ctx_from=[a])()
    message = only(app.workflow, "w", tasks=[a, b])
    assert "add `workflow_ctx: WorkflowContext | None = None`" in message


def test_rule_ctx_parameter_must_be_optional_context() -> None:
    message = only(app.workflow, "w", tasks=[t.bad_ctx.node()()])
    assert "declare `workflow_ctx: WorkflowContext | None = None`" in message


def test_rule_output_not_in_workflow() -> None:
    a = t.name.node()()
    stranger = t.name.node(node_id="stranger")()
    assert "output names node 'stranger'" in only(app.workflow, "w", tasks=[a], output=stranger)
    assert "output names node id 'nope'" in only(app.workflow, "w", tasks=[a], output="nope")


def test_rule_output_type_against_declared_generic() -> None:
    class Wrong(WorkflowDefinition[str]):
        definition_key = "tests.wrong_output"
        fetch = t.fetch.node()(order_id=1)

        class Meta:
            output = "fetch"

    message = only(Wrong.build)
    assert "returns int, but the definition declares WorkflowDefinition[str]" in message

    class Right(WorkflowDefinition[Receipt]):
        definition_key = "tests.right_output"
        fetch = t.fetch.node()(order_id=1)
        receipt = t.receipt.node()(amount=from_node(fetch))

        class Meta:
            output = "receipt"

    assert Right.build().output_index == 1


def test_rule_non_serialisable_kwargs() -> None:
    message = only(app.workflow, "w", tasks=[t.name.node()(who=object())])
    assert message.startswith("node 'w:0': argument who")
    message = only(app.workflow, "w", tasks=[t.fetch.node()(order_id="not a number")])
    assert "order_id" in message


def test_rule_subworkflow_definition_cycle() -> None:
    class A(WorkflowDefinition[Any]):
        definition_key = "tests.cycle_a"
        b = SubWorkflowNode("tests.cycle_b")

    class B(WorkflowDefinition[Any]):
        definition_key = "tests.cycle_b"
        a = SubWorkflowNode(A)

    assert "tests.cycle_a contains tests.cycle_b contains tests.cycle_a" in only(A.build)
    assert "tests.cycle_b contains tests.cycle_a contains tests.cycle_b" in only(B.build)


def test_rule_unknown_definition_key() -> None:
    message = only(app.workflow, "w", tasks=[SubWorkflowNode("tests.nowhere")])
    assert "'tests.nowhere' is not a registered WorkflowDefinition" in message


def test_rule_subworkflow_parameters() -> None:
    class Child(WorkflowDefinition[int]):
        definition_key = "tests.param_child"
        fetch = t.fetch.node()(order_id=param("order_id"))

    found = problems(app.workflow, "w", tasks=[SubWorkflowNode(Child, kwargs={"x": 1})])
    assert any("'x' is not a build parameter" in p for p in found)
    assert any("missing build parameter(s) order_id" in p for p in found)


def test_rule_subworkflow_cannot_take_upstream_results() -> None:
    class Fed(WorkflowDefinition[int]):
        definition_key = "tests.fed_child"
        fetch = t.fetch.node()(order_id=param("order_id"))

    upstream = t.fetch.node(node_id="up")(order_id=1)
    for node in (
        SubWorkflowNode(Fed, args_from={"order_id": upstream}, waits_for=[upstream], node_id="sub"),
        SubWorkflowNode(Fed, kwargs={"order_id": from_node(upstream)}, node_id="sub"),
    ):
        message = only(app.workflow, "w", tasks=[upstream, node])
        assert message.startswith("node 'sub': args_from['order_id'] (or from_node) cannot feed")
        assert "pass build parameters in kwargs=" in message


def test_rule_build_with_parameters() -> None:
    class Param(WorkflowDefinition[Any]):
        definition_key = "tests.params"
        fetch = t.fetch.node()(order_id=param("order_id"))

    assert "build with build_with(order_id=...)" in only(Param.build)
    assert "build_with(other=...) is not a parameter" in only(Param.build_with, order_id=1, other=2)


def test_rule_success_policy_unknown_nodes_and_empty_cases() -> None:
    a = t.name.node()()
    stranger = t.name.node(node_id="stranger")()
    empty = SuccessPolicy(cases=[])
    assert "has no cases" in only(app.workflow, "w", tasks=[a], success_policy=empty)
    hollow = SuccessPolicy(cases=[SuccessCase(required=[])])
    assert "case 0 requires no node" in only(app.workflow, "w", tasks=[a], success_policy=hollow)
    unknown = SuccessPolicy(cases=[SuccessCase(required=[stranger])], optional=["ghost"])
    found = problems(app.workflow, "w", tasks=[a], success_policy=unknown)
    assert any("success_policy case 0 names node 'stranger'" in p for p in found)
    assert any("success_policy optional names node id 'ghost'" in p for p in found)


def test_rule_queue_unknown_to_queue_mode() -> None:
    message = only(app.workflow, "w", tasks=[t.name.node(queue="fast")()])
    assert "queue_name='fast' needs HORSIES['QUEUE_MODE'] = 'CUSTOM'" in message
    custom = {"QUEUE_MODE": "CUSTOM", "CUSTOM_QUEUES": [{"name": "slow", "priority": 1}]}
    with override_settings(HORSIES=custom):
        message = only(app.workflow, "w", tasks=[t.name.node(queue="fast")()])
        assert "'fast' is not in HORSIES['CUSTOM_QUEUES']" in message


def test_rule_priority_bounds() -> None:
    for bad in (0, 101, True, "1"):
        message = only(app.workflow, "w", tasks=[t.name.node(priority=bad)()])  # type: ignore[arg-type]
        assert "must be an int from 1 (first) to 100" in message


def test_rule_good_until_must_be_aware() -> None:
    naive = datetime(2030, 1, 1)  # the mistake under test: naive
    assert "timezone-aware" in only(app.workflow, "w", tasks=[t.name.node(good_until=naive)()])
    aware = datetime(2030, 1, 1, tzinfo=UTC)
    spec = app.workflow("w", tasks=[t.name.node(good_until=aware)()])
    assert spec.nodes[0].good_until == aware


def test_rule_definition_key_required_and_unique() -> None:
    with pytest.raises(WorkflowValidationError, match="has no definition_key"):

        class NoKey(WorkflowDefinition[Any]):
            a = t.name.node()()

    class First(WorkflowDefinition[Any]):
        definition_key = "tests.taken"
        a = t.name.node()()

    with pytest.raises(WorkflowValidationError, match="already used"):

        class Second(WorkflowDefinition[Any]):
            definition_key = "tests.taken"
            a = t.name.node()()
