"""How to test code that uses horsies_django, shown on the example project's tasks.

No worker runs here: `run_pending()` runs what was sent in the test's own process, through the
same claim, retry decision and finish statement a worker uses; `assert_sent` checks what was
sent; eager mode runs each send at once.
"""

from __future__ import annotations

from django.test import TestCase, override_settings

from horsies_django.pytest_plugin import RunPending
from horsies_django.testing import assert_sent, run_pending, sent_tasks
from orders.schemas import Order
from orders.tasks import charge_payment, process_order, validate_order


def an_order(order_id: str = "A-1") -> Order:
    return Order(
        order_id=order_id,
        customer_email="ann@example.com",
        items=["book"],
        shipping_address="1 Main St",
        shipping_method="standard",
    )


class RunPendingTests(TestCase):
    def test_a_valid_order_is_validated(self) -> None:
        handle = validate_order.send(order=an_order()).ok_value

        ran = run_pending()

        assert [r.task_name for r in ran] == ["validate_order"]
        assert handle.get(timeout_ms=1000).ok_value.order_id == "A-1"

    def test_an_empty_order_fails_with_its_domain_error(self) -> None:
        order = an_order().model_copy(update={"items": []})
        handle = validate_order.send(order=order).ok_value

        run_pending()

        assert handle.get(timeout_ms=1000).err_value.error_code == "EMPTY_ORDER"


class AssertSentTests(TestCase):
    def test_the_payment_is_queued_with_its_amount(self) -> None:
        charge_payment.send(order_id=7, amount_cents=1_200)

        assert_sent(charge_payment, count=1, order_id=7, amount_cents=1_200)
        assert_sent(process_order, count=0)
        assert [s.queue_name for s in sent_tasks(charge_payment)] == ["critical"]


@override_settings(
    HORSIES={
        "QUEUE_MODE": "CUSTOM",
        "CUSTOM_QUEUES": [{"name": "critical", "priority": 1}, {"name": "standard", "priority": 2}],
        "EAGER": True,
    }
)
class EagerModeTests(TestCase):
    def test_a_send_returns_a_finished_task(self) -> None:
        handle = process_order.send(order_id=3).ok_value
        assert handle.get().ok_value == "Order 3 processed"


def test_with_the_pytest_fixture(horsies_run_pending: RunPending) -> None:
    handle = charge_payment.send(order_id=9, amount_cents=10**9).ok_value
    horsies_run_pending()
    assert handle.get(timeout_ms=1_000).err_value.error_code == "PAYMENT_DECLINED"
