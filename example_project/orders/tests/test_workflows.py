"""How to test a workflow, shown on the example project's checkout (`orders/workflows.py`).

No worker runs here: `run_pending()` runs each node's task in the test's own process, and the
database advances the workflow exactly as it does when a worker finishes a task.
"""

from __future__ import annotations

from django.test import TestCase

from horsies_django import TaskResult, WorkflowHandle
from horsies_django.testing import run_pending
from orders.schemas import Order
from orders.tasks import CARD_LIMIT_CENTS
from orders.workflows import checkout


def an_order(**changes: object) -> Order:
    order = Order(
        order_id="A-7",
        customer_email="ann@example.com",
        items=["book", "lamp"],
        shipping_address="1 Main St",
        shipping_method="standard",
    )
    return order.model_copy(update=changes)


def node_statuses(handle: WorkflowHandle) -> dict[str, str]:
    return {node.node_id: node.status for node in handle.tasks().ok_value}


class CheckoutTests(TestCase):
    def test_a_good_order_is_validated_charged_reserved_and_shipped(self) -> None:
        handle = checkout(order=an_order(), order_number=7, amount_cents=1_500).start().ok_value
        # Only the root is runnable at first; the others wait for what they depend on.
        assert node_statuses(handle) == {
            "validate": "ENQUEUED",
            "charge": "PENDING",
            "reserve": "PENDING",
            "ship": "PENDING",
        }

        ran = [r.task_name for r in run_pending()]

        # validate, then charge and reserve (in either order), then ship.
        assert ran[0] == "validate_order"
        assert sorted(ran[1:3]) == ["charge_payment", "reserve_stock"]
        assert ran[3:] == ["ship_order"]
        assert handle.status().ok_value == "COMPLETED"
        assert set(node_statuses(handle).values()) == {"COMPLETED"}
        assert handle.get(timeout_ms=1_000) == TaskResult(
            ok="Order A-7 shipped standard (2 item(s) reserved; "
            "payment: Charged 1500 cents for order 7)"
        )

    def test_an_empty_order_fails_the_checkout_and_skips_the_rest(self) -> None:
        spec = checkout(order=an_order(items=[]), order_number=8, amount_cents=1_500)
        handle = spec.start().ok_value

        assert [r.task_name for r in run_pending()] == ["validate_order"]

        assert node_statuses(handle) == {
            "validate": "FAILED",
            "charge": "SKIPPED",
            "reserve": "SKIPPED",
            "ship": "SKIPPED",
        }
        assert handle.get(timeout_ms=1_000).unwrap_err().error_code == "EMPTY_ORDER"

    def test_a_declined_payment_fails_the_checkout_before_shipping(self) -> None:
        spec = checkout(order=an_order(), order_number=9, amount_cents=CARD_LIMIT_CENTS + 1)
        handle = spec.start().ok_value

        run_pending()

        assert node_statuses(handle) == {
            "validate": "COMPLETED",
            "charge": "FAILED",
            "reserve": "COMPLETED",
            "ship": "SKIPPED",
        }
        assert handle.status().ok_value == "FAILED"
        assert handle.get(timeout_ms=1_000).unwrap_err().error_code == "PAYMENT_DECLINED"
