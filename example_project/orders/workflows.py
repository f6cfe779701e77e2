"""The example project's workflow: a checkout, as a DAG of the tasks in `orders/tasks.py`.

    validate ──┬── charge ──┬── ship
               └── reserve ─┘

`validate` checks the order; `charge` (an ordinary task: it only waits for `validate`) and
`reserve` (fed `validate`'s result) then run in parallel; `ship` gets all three results and is
the workflow's output. If a node fails, the nodes after it are skipped and the workflow ends
FAILED with that node's error.
"""

from __future__ import annotations

from horsies_django import WorkflowSpec, app, from_node
from orders.schemas import Order
from orders.tasks import charge_payment, reserve_stock, ship_order, validate_order

CHECKOUT = "checkout"


def checkout(
    *, order: Order, order_number: int, amount_cents: int, warehouse_delay_s: float = 0.0
) -> WorkflowSpec:
    """The checkout of `order` (`order_number` is its id for the payment), ready to `start()`;
    `warehouse_delay_s` slows the stock reservation down (see `reserve_stock`)."""
    validate = validate_order.node(node_id="validate")(order=order)
    charge = charge_payment.node(node_id="charge", waits_for=[validate])(
        order_id=order_number, amount_cents=amount_cents
    )
    reserve = reserve_stock.node(node_id="reserve")(
        order=from_node(validate), warehouse_delay_s=warehouse_delay_s
    )
    ship = ship_order.node(node_id="ship")(
        order=from_node(validate), payment=from_node(charge), reservation=from_node(reserve)
    )
    return app.workflow(CHECKOUT, tasks=[validate, charge, reserve, ship], output=ship)
