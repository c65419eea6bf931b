"""Dollars as people type and read them, micro-dollars as the console counts them."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS = 1_000_000
AMOUNT = re.compile(r"^\$?\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]{1,2}))?$")


def parse_dollars(text: str) -> int:
    """'$1,000', '1000', '12.5' → micro-dollars. Raises ValueError with a message to show."""
    value = (text or "").strip()
    if value.startswith("-"):
        raise ValueError("Enter an amount above zero.")
    match = AMOUNT.match(value)
    if not match:
        raise ValueError("Enter an amount in US dollars, like 1000 or 1,000.00.")
    whole, cents = match.group(1).replace(",", ""), match.group(2) or "0"
    try:
        amount = Decimal(whole) + Decimal(cents.ljust(2, "0")) / 100
    except InvalidOperation:
        raise ValueError("Enter an amount in US dollars, like 1000 or 1,000.00.") from None
    return int(amount * MICROS)


def dollars(micros: int | None, *, cents: bool = True) -> str:
    if micros is None:
        return ""
    amount = (Decimal(micros) / MICROS).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}" if cents else f"{sign}${abs(amount):,.0f}"


def dollars_input(micros: int | None) -> str:
    """An amount as a form shows it back: '1000' or '1000.50'."""
    if micros is None:
        return ""
    amount = (Decimal(micros) / MICROS).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{amount:.2f}".removesuffix(".00")


def cents(micros: int) -> int:
    """Micro-dollars → whole cents, half up."""
    return int((Decimal(micros) / 10_000).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def cents_text(value: int) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${Decimal(abs(value)) / 100:,.2f}"
