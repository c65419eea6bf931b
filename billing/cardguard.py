"""Full card numbers never enter the console: any submitted value that looks like one (13 to 19
digits, spaces or dashes between them allowed, passing the Luhn check) is refused before a
form is validated, and blanked so the page that says so does not echo it back.

The console keeps brand, last 4, expiry and holder name of a card, nothing else: a real
processor's tokenization (the payment provider interface, billing/payments.py) is where a
number would go.
"""

from __future__ import annotations

import re

CARD_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
MESSAGE = (
    "This looks like a full card number. The console never stores card numbers: enter only "
    "the brand, the last 4 digits and the expiry."
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def contains_card_number(value: object) -> bool:
    if not isinstance(value, str) or len(value) < 13:
        return False
    for match in CARD_CANDIDATE.finditer(value):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


class RefuseCardNumbers:
    """Form mixin: every field, whatever it is for, refuses a full card number."""

    def full_clean(self):
        super().full_clean()
        if not self.is_bound:
            return
        flagged = [
            name
            for name in self.fields
            if any(contains_card_number(v) for v in self._raw_values(name))
        ]
        if not flagged:
            return
        data = self.data.copy()
        for name in flagged:
            key = self.add_prefix(name)
            if hasattr(data, "setlist"):
                data.setlist(key, [""])
            else:
                data[key] = ""
            self.cleaned_data.pop(name, None)
            self._errors.pop(name, None)
            self.add_error(name, MESSAGE)
        self.data = data  # what the page shows again: never the number

    def _raw_values(self, name: str) -> list:
        key = self.add_prefix(name)
        if hasattr(self.data, "getlist"):
            return self.data.getlist(key)
        value = self.data.get(key)
        return value if isinstance(value, list) else [value]
