"""What the demo sends, what each send must end as, and how far along each one is.

Every task is sent with an expectation (final status, error code, number of attempts), and the
checkout workflow is started with one (final status, each node's status, output), so the demo
can tell a working queue from a broken one and exit non-zero on the latter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from horsies_django import (
    TASK_TERMINAL_STATES,
    Err,
    Ok,
    Result,
    TaskError,
    TaskHandle,
    TaskInfo,
    TaskResult,
    TaskSendResult,
    TaskStatus,
    WorkflowHandle,
    WorkflowSpec,
    WorkflowStartError,
    WorkflowTaskInfo,
)
from horsies_django.states import WORKFLOW_TERMINAL_STATES, NodeStatus, WorkflowStatus
from orders.schemas import Order
from orders.tasks import (
    charge_payment,
    generate_invoice,
    notify_warehouse,
    process_order,
    send_receipt,
    validate_order,
)
from orders.workflows import checkout

SCHEDULE_DELAY_S = 3
CHECKOUT_AMOUNT_CENTS = 4_999
# How long the checkout's stock reservation takes: long enough to see the workflow half done.
WAREHOUSE_DELAY_S = 1.0
# Node statuses after which a node does nothing more.
NODE_DONE_STATES = frozenset({NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED})


@dataclass(frozen=True, slots=True)
class Expectation:
    """How a demo task must end."""

    status: TaskStatus
    attempts: int = 1
    error_code: str | None = None
    min_delay_s: float = 0.0  # from send to start


@dataclass(slots=True)
class DemoTask:
    """One sent task, its expectation and the latest `TaskInfo` read for it."""

    label: str
    handle: TaskHandle[Any]
    expected: Expectation
    info: TaskInfo | None = None
    read_error: str | None = None

    @property
    def status(self) -> TaskStatus | None:
        return None if self.info is None else self.info.status

    @property
    def finished(self) -> bool:
        return self.status in TASK_TERMINAL_STATES

    @property
    def attempts(self) -> int:
        return len(self.info.attempts or []) if self.info is not None else 0

    def refresh(self) -> bool:
        """Re-read the task (with result and attempts); True if its status or attempts changed."""
        before = (self.status, self.attempts)
        match self.handle.info(include_result=True, include_attempts=True):
            case Ok(info):
                self.info, self.read_error = info, None
            case Err(error):
                self.read_error = f"{error.code}: {error.message}"
        return (self.status, self.attempts) != before

    def problem(self) -> str | None:
        """How the task differs from its expectation (None when it is as expected)."""
        info, want = self.info, self.expected
        if info is None:
            return self.read_error or "task not found"
        if info.status != want.status:
            return f"status {info.status}, expected {want.status}"
        if want.error_code is not None and info.error_code != want.error_code:
            return f"error code {info.error_code}, expected {want.error_code}"
        if self.attempts != want.attempts:
            return f"{self.attempts} attempt(s), expected {want.attempts}"
        delay = start_delay(info)
        if want.min_delay_s and (delay is None or delay < want.min_delay_s - 0.05):
            return f"started {delay} s after the send, expected at least {want.min_delay_s} s"
        return None


def start_delay(info: TaskInfo) -> float | None:
    """Seconds from the send to the first attempt's start."""
    attempts = info.attempts or []
    first = attempts[-1].started_at if attempts else info.started_at
    if first is None:
        return None
    return round((first - info.sent_at) / timedelta(seconds=1), 2)


def _sent(label: str, result: TaskSendResult[TaskHandle[Any]], expected: Expectation) -> DemoTask:
    match result:
        case Ok(handle):
            return DemoTask(label, handle, expected)
        case Err(error):
            raise SendError(f"could not send {label!r}: {error.code}: {error.message}")


class SendError(Exception):
    """A demo send returned Err (e.g. the database is unreachable)."""


GOOD_ORDER = Order(
    order_id="A-1001",
    customer_email="ada@example.com",
    items=["keyboard", "mouse"],
    shipping_address="1 Analytical Engine Way, London",
    shipping_method="express",
)


def send_all(run_key: str) -> list[DemoTask]:
    """Send the demo's mix of tasks; `run_key` keeps this run's counters apart from earlier runs."""
    good = GOOD_ORDER
    empty = good.model_copy(update={"order_id": "A-1002", "items": []})
    return [
        _sent(
            "validate a good order (pydantic in/out)",
            validate_order.send(order=good),
            Expectation(TaskStatus.COMPLETED),
        ),
        _sent(
            "validate an empty order",
            validate_order.send(order=empty),
            Expectation(TaskStatus.FAILED, error_code="EMPTY_ORDER"),
        ),
        _sent(
            "process order 1001",
            process_order.send(order_id=1001),
            Expectation(TaskStatus.COMPLETED),
        ),
        _sent(
            "charge over the card limit",
            charge_payment.send(order_id=1001, amount_cents=120_000),
            Expectation(TaskStatus.FAILED, error_code="PAYMENT_DECLINED"),
        ),
        _sent(
            "generate invoice (raises KeyError)",
            generate_invoice.send(order_id=1001),
            Expectation(TaskStatus.FAILED, error_code="UNHANDLED_EXCEPTION"),
        ),
        _sent(
            "notify warehouse (flaky, retried)",
            notify_warehouse.send(order_id=1001, run_key=run_key, fail_times=2),
            Expectation(TaskStatus.COMPLETED, attempts=3),
        ),
        _sent(
            f"send receipt in {SCHEDULE_DELAY_S} s (scheduled)",
            send_receipt.schedule(SCHEDULE_DELAY_S, order_id=1001, email=good.customer_email),
            Expectation(TaskStatus.COMPLETED, min_delay_s=SCHEDULE_DELAY_S),
        ),
    ]


# ----------------------------------------------------------------------------- the workflow


@dataclass(frozen=True, slots=True)
class WorkflowExpectation:
    """How the demo workflow must end: its status, each node's status and its output."""

    status: WorkflowStatus
    nodes: Mapping[str, NodeStatus]
    output: TaskResult[Any, TaskError]


@dataclass(slots=True)
class DemoWorkflow:
    """The started workflow, its expectation and the latest status, nodes and output read."""

    spec: WorkflowSpec
    handle: WorkflowHandle
    expected: WorkflowExpectation
    status: str | None = None
    nodes: list[WorkflowTaskInfo] = field(default_factory=list)
    output: TaskResult[Any, TaskError] | None = None
    read_error: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def finished(self) -> bool:
        return self.status in WORKFLOW_TERMINAL_STATES and self.output is not None

    @property
    def total(self) -> int:
        return len(self.spec.nodes)

    @property
    def done(self) -> int:
        return sum(1 for node in self.nodes if node.status in NODE_DONE_STATES)

    def waits_for(self, node_id: str) -> list[str]:
        """The ids of the nodes this node waits for, from the spec it was started with."""
        node = self.spec.nodes[self.spec.index_of(node_id)]
        return [self.spec.nodes[i].node_id for i in node.waits_for]

    def refresh(self) -> tuple[bool, list[WorkflowTaskInfo]]:
        """Re-read the workflow, then its nodes (so a finished workflow's nodes are final), then
        its output once it ended; return (status or progress changed, the nodes that changed)."""
        before = (self.status, self.done)
        previous = {node.node_id: node.status for node in self.nodes}
        match self.handle.status():
            case Ok(status):
                self.status, self.read_error = status, None
            case Err(error):
                self.read_error = f"{error.code}: {error.message}"
                return False, []
        match self.handle.tasks():
            case Ok(nodes):
                self.nodes = nodes
            case Err(error):
                self.read_error = f"{error.code}: {error.message}"
                return (self.status, self.done) != before, []  # the next refresh reads them
        if self.status in WORKFLOW_TERMINAL_STATES and self.output is None:
            # It has ended: get() returns its result at once.
            self.output = self.handle.get(timeout_ms=5_000)
        changed = [node for node in self.nodes if previous.get(node.node_id) != node.status]
        return (self.status, self.done) != before, changed

    def problem(self) -> str | None:
        """How the workflow differs from its expectation (None when it is as expected)."""
        want = self.expected
        if self.status is None:
            return self.read_error or "workflow not found"
        if self.status != want.status:
            return f"status {self.status}, expected {want.status}"
        statuses = {node.node_id: node.status for node in self.nodes}
        for node_id, status in want.nodes.items():
            if statuses.get(node_id) != status:
                return f"node {node_id} is {statuses.get(node_id)}, expected {status}"
        if self.output != want.output:
            return f"output {self.output}, expected {want.output}"
        return None


def start_checkout() -> DemoWorkflow:
    """Start the checkout workflow of the good order (see `orders/workflows.py`)."""
    spec = checkout(
        order=GOOD_ORDER,
        order_number=1001,
        amount_cents=CHECKOUT_AMOUNT_CENTS,
        warehouse_delay_s=WAREHOUSE_DELAY_S,
    )
    shipped = (
        f"Order {GOOD_ORDER.order_id} shipped {GOOD_ORDER.shipping_method} "
        f"({len(GOOD_ORDER.items)} item(s) reserved; "
        f"payment: Charged {CHECKOUT_AMOUNT_CENTS} cents for order 1001)"
    )
    expected = WorkflowExpectation(
        status=WorkflowStatus.COMPLETED,
        nodes={node.node_id: NodeStatus.COMPLETED for node in spec.nodes},
        output=TaskResult(ok=shipped),
    )
    started: Result[WorkflowHandle, WorkflowStartError] = spec.start()
    match started:
        case Ok(handle):
            return DemoWorkflow(spec, handle, expected)
        case Err(error):
            raise SendError(
                f"could not start workflow {spec.name!r}: {error.code}: {error.message}"
            )
