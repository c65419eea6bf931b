"""The payment-provider interface: how the console asks for money (credit recharges).

    result = provider().charge(organization=..., payment_method=..., amount_micros=...,
                               description=..., idempotency_key=...)

`BILLING_PAYMENT_PROVIDER` (a dotted path, default `billing.payments.BuiltinProvider`) names the
class. The built-in provider moves no money: it records the charge as *pending* against the
default payment method, for finance to collect (an invoice, a card terminal) and mark. A real
processor (Stripe and the like) implements `charge` with its API, passing `idempotency_key` so a
retried call cannot charge twice, and returns its own reference and status. Card numbers never
pass through the console: a processor's tokenized payment method is what it would charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from .models import ChargeStatus


@dataclass(frozen=True)
class ChargeResult:
    status: str  # ChargeStatus
    reference: str = ""
    message: str = ""


class PaymentProvider(Protocol):
    name: str

    def charge(
        self,
        *,
        organization,
        payment_method,
        amount_micros: int,
        description: str,
        idempotency_key: str,
    ) -> ChargeResult: ...


class BuiltinProvider:
    """Records the charge as pending: money is collected outside the console."""

    name = "builtin"

    def charge(
        self,
        *,
        organization,
        payment_method,
        amount_micros: int,
        description: str,
        idempotency_key: str,
    ) -> ChargeResult:
        return ChargeResult(ChargeStatus.PENDING, reference=idempotency_key)


def provider() -> PaymentProvider:
    path = getattr(settings, "BILLING_PAYMENT_PROVIDER", "") or "billing.payments.BuiltinProvider"
    return import_string(path)()
