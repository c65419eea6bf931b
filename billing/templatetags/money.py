from django import template

from billing import money

register = template.Library()


@register.filter
def dollars(micros):
    """Micro-dollars as "$1,234.56"."""
    return money.dollars(int(micros or 0))


@register.filter
def cents(value):
    """Whole cents as "$1,234.56"."""
    return money.cents_text(int(value or 0))
