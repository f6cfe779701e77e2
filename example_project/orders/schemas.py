"""Pydantic models passed to and returned by tasks (importable, so workers can rehydrate them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Order(BaseModel):
    """An order as the shop front receives it."""

    order_id: str
    customer_email: str
    items: list[str]
    shipping_address: str
    shipping_method: Literal["standard", "express"] = "standard"


class ValidatedOrder(BaseModel):
    """An order that passed validation."""

    order_id: str
    customer_email: str
    items: list[str]
    shipping_address: str
    shipping_method: Literal["standard", "express"]
    validated_at: datetime
