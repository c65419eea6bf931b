import django_filters

from .models import Invoice, InvoiceStatus, Payment, PaymentKind


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=InvoiceStatus.choices, label="Status", empty_label="Any"
    )
    year = django_filters.NumberFilter(field_name="period_start__year", label="Year")

    class Meta:
        model = Invoice
        fields = ["status", "year"]


class PaymentFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(
        choices=PaymentKind.choices, label="Paid by", empty_label="Any"
    )

    class Meta:
        model = Payment
        fields = ["kind"]
