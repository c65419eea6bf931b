"""Billing forms: input validation only (the services apply the business rules). Every one of
them refuses a full card number in any field (`RefuseCardNumbers`)."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import money
from .cardguard import RefuseCardNumbers
from .models import CardBrand, PaymentKind, PaymentMethodKind
from .services import MAX_RECIPIENTS, clean_thresholds


class DollarField(forms.Field):
    """US dollars as typed ('1000', '$1,000.50') → integer micro-dollars."""

    widget = forms.TextInput

    def __init__(self, *args, allow_zero: bool = False, **kwargs):
        self.allow_zero = allow_zero
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = (value or "").strip() if isinstance(value, str) else value
        if value in self.empty_values:
            return None
        if len(value) > 20:
            raise ValidationError("Enter an amount in US dollars, like 1000 or 1,000.00.")
        try:
            micros = money.parse_dollars(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if micros == 0 and not self.allow_zero:
            raise ValidationError("Enter an amount above zero.")
        return micros


class SpendLimitForm(RefuseCardNumbers, forms.Form):
    enabled = forms.BooleanField(required=False, label="Enable spending limit")
    cap = DollarField(
        label="Monthly cap (USD)",
        help_text="Requests are refused once this month's spend reaches it.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "1000"}),
    )
    thresholds = forms.CharField(
        label="Email alerts at (% of the cap)",
        max_length=60,
        initial="50, 80, 100",
        help_text="Whole percentages from lowest to highest, separated by commas.",
    )
    notify_billing_members = forms.BooleanField(
        required=False, initial=True, label="Email the Admins and Billing-only members"
    )
    extra_recipients = forms.CharField(
        required=False,
        max_length=2000,
        label="Also email",
        help_text=f"Other addresses, separated by commas or new lines (at most {MAX_RECIPIENTS}).",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean_thresholds(self):
        raw = self.cleaned_data["thresholds"]
        parts = [p.strip().rstrip("%").strip() for p in re.split(r"[,\s]+", raw) if p.strip()]
        if any(not p.isascii() or not p.isdigit() for p in parts):
            raise ValidationError("Enter whole percentages separated by commas, like 50, 80, 100.")
        try:
            return clean_thresholds(parts)
        except ValidationError as error:
            raise ValidationError(error.message_dict["thresholds"]) from None

    def clean_extra_recipients(self):
        raw = self.cleaned_data["extra_recipients"]
        return [p for p in re.split(r"[,;\s]+", raw) if p]


class ScopedLimitForm(SpendLimitForm):
    """A workspace's or an API key's limit: the target is chosen once, on creation."""

    target = forms.ChoiceField(label="Applies to")
    field_order = ["target", "enabled", "cap", "thresholds"]

    def __init__(self, *args, targets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [("", "Choose…"), *targets]


class GrantCreditsForm(RefuseCardNumbers, forms.Form):
    amount = DollarField(label="Amount (USD)")
    memo = forms.CharField(
        max_length=200, label="Memo", help_text="Why: a promotion, a refund, a prepayment…"
    )


class CreditSettingsForm(RefuseCardNumbers, forms.Form):
    enabled = forms.BooleanField(
        required=False,
        label="Use prepaid credits",
        help_text="Requests are refused when the balance reaches zero.",
    )
    auto_recharge = forms.BooleanField(required=False, label="Recharge automatically")
    recharge_threshold = DollarField(
        label="When the balance falls below (USD)", required=False, allow_zero=True
    )
    recharge_amount = DollarField(label="Recharge by (USD)", required=False)
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("auto_recharge"):
            if data.get("recharge_amount") is None and "recharge_amount" not in self.errors:
                self.add_error("recharge_amount", "Enter the amount to recharge.")
            if data.get("recharge_threshold") is None and "recharge_threshold" not in self.errors:
                self.add_error("recharge_threshold", "Enter the balance that triggers a recharge.")
        return data


class CardForm(RefuseCardNumbers, forms.Form):
    brand = forms.ChoiceField(choices=CardBrand.choices)
    last4 = forms.CharField(
        label="Last 4 digits",
        min_length=4,
        max_length=4,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        help_text="Only the last 4: the console never stores card numbers.",
    )
    exp_month = forms.TypedChoiceField(
        label="Expiry month", coerce=int, choices=[(m, f"{m:02d}") for m in range(1, 13)]
    )
    exp_year = forms.IntegerField(label="Expiry year", min_value=2000, max_value=2100)
    holder_name = forms.CharField(label="Name on the card", max_length=100)
    make_default = forms.BooleanField(required=False, label="Make it the default")

    def clean_last4(self):
        value = self.cleaned_data["last4"].strip()
        if not (value.isascii() and value.isdigit() and len(value) == 4):
            raise ValidationError("Enter the last 4 digits of the card.")
        return value


class InvoicingForm(RefuseCardNumbers, forms.Form):
    payment_terms_days = forms.TypedChoiceField(
        label="Payment terms",
        coerce=int,
        choices=[(days, f"Net {days} days") for days in (15, 30, 45, 60)],
        initial=30,
    )
    make_default = forms.BooleanField(required=False, label="Make it the default")


class BillingContactForm(RefuseCardNumbers, forms.Form):
    billing_email = forms.EmailField(required=False, label="Billing email")
    legal_name = forms.CharField(required=False, max_length=200, label="Company name")
    address = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3})
    )
    tax_id = forms.CharField(required=False, max_length=40, label="Tax ID (VAT, EIN…)")
    invoice_prefix = forms.CharField(
        max_length=12,
        label="Invoice number prefix",
        help_text="Letters and digits; numbers read like ACME-2026-0001.",
    )

    def clean_invoice_prefix(self):
        value = self.cleaned_data["invoice_prefix"].strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{2,12}", value):
            raise ValidationError("Use 2 to 12 letters or digits.")
        return value


class PaymentForm(RefuseCardNumbers, forms.Form):
    amount = DollarField(label="Amount received (USD)")
    kind = forms.ChoiceField(
        choices=[c for c in PaymentKind.choices if c[0] != PaymentKind.CREDITS], label="Paid by"
    )
    reference = forms.CharField(required=False, max_length=100, label="Reference")
    received_on = forms.DateField(
        label="Received on", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["received_on"].initial = timezone.localdate()


class VoidForm(RefuseCardNumbers, forms.Form):
    reason = forms.CharField(max_length=200, label="Reason")


PAYMENT_METHOD_KINDS = PaymentMethodKind


class IncreaseRequestForm(RefuseCardNumbers, forms.Form):
    """A member asks for a higher monthly cap on one of their keys or workspaces."""

    target = forms.ChoiceField(label="On")
    cap = DollarField(
        label="Monthly cap you need (USD)",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "500"}),
    )
    reason = forms.CharField(
        required=False,
        max_length=500,
        label="Why (optional)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, targets: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = targets


class IncreaseApproveForm(RefuseCardNumbers, forms.Form):
    cap = DollarField(
        label="Monthly cap to set (USD)",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )
