"""Tasks with typed results to build workflows from (imported by the workflow tests)."""

from __future__ import annotations

from pydantic import BaseModel

from horsies_django import TaskError, TaskResult, WorkflowContext, WorkflowMeta, app


class Receipt(BaseModel):
    order_id: int
    total: int


@app.task("tests.wf.fetch")
def fetch(*, order_id: int) -> TaskResult[int, TaskError]:
    return TaskResult(ok=order_id * 10)


@app.task("tests.wf.total")
def total(*, amount: TaskResult[int, TaskError], extra: int = 0) -> TaskResult[int, TaskError]:
    return TaskResult(ok=amount.unwrap() + extra)


@app.task("tests.wf.maybe_total")
def maybe_total(*, amount: TaskResult[int, TaskError] | None = None) -> TaskResult[int, TaskError]:
    return TaskResult(ok=0 if amount is None or amount.is_err() else amount.unwrap())


@app.task("tests.wf.strict_total")
def strict_total(*, amount: TaskResult[int, TaskError]) -> TaskResult[int, TaskError]:
    return TaskResult(ok=amount.unwrap())


@app.task("tests.wf.label")
def label(*, text: TaskResult[str, TaskError]) -> TaskResult[str, TaskError]:
    return TaskResult(ok=text.unwrap().upper())


@app.task("tests.wf.untyped_input")
def untyped_input(*, amount: int = 0) -> TaskResult[int, TaskError]:
    return TaskResult(ok=amount)


@app.task("tests.wf.receipt")
def receipt(*, amount: TaskResult[int, TaskError]) -> TaskResult[Receipt, TaskError]:
    return TaskResult(ok=Receipt(order_id=1, total=amount.unwrap()))


@app.task("tests.wf.with_ctx")
def with_ctx(
    *, workflow_ctx: WorkflowContext | None = None, workflow_meta: WorkflowMeta | None = None
) -> TaskResult[str, TaskError]:
    return TaskResult(ok="ctx" if workflow_ctx else "none")


@app.task("tests.wf.bad_ctx")
def bad_ctx(*, workflow_ctx: WorkflowContext) -> TaskResult[str, TaskError]:
    return TaskResult(ok="x")


@app.task("tests.wf.name")
def name(*, who: str = "x") -> TaskResult[str, TaskError]:
    return TaskResult(ok=who)


@app.task("tests.wf.fail_int")
def fail_int(*, code: str) -> TaskResult[int, TaskError]:
    return TaskResult(err=TaskError(error_code=code, message=f"failed with {code}"))


@app.task("tests.wf.recover")
def recover(*, amount: TaskResult[int, TaskError]) -> TaskResult[str, TaskError]:
    return TaskResult(ok=f"recovered from {amount.unwrap_err().error_code}")


@app.task("tests.wf.ctx_reader")
def ctx_reader(*, workflow_ctx: WorkflowContext | None = None) -> TaskResult[int, TaskError]:
    assert workflow_ctx is not None
    return TaskResult(ok=workflow_ctx.result_for("fetch").unwrap() + workflow_ctx.task_index)


@app.task("tests.wf.summary_reader")
def summary_reader(
    *, workflow_ctx: WorkflowContext | None = None
) -> TaskResult[dict[str, object], TaskError]:
    """What the context says of the subworkflow node "child"."""
    assert workflow_ctx is not None
    summary = workflow_ctx.summary_for("child")
    output = summary.output.unwrap() if summary.output is not None else None
    return TaskResult(
        ok={
            "status": summary.status,
            "output": output,
            "total": summary.total_nodes,
            "completed": summary.completed_nodes,
            "same_as_result": workflow_ctx.result_for("child") == summary.output,
        }
    )
