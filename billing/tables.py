import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from . import money, periods
from .models import Invoice, InvoiceStatus, Payment

NOWRAP = {"td": {"class": "text-nowrap"}}
STATUS_BADGES = {
    InvoiceStatus.DRAFT: "text-bg-secondary",
    InvoiceStatus.OPEN: "text-bg-warning",
    InvoiceStatus.PAID: "text-bg-success",
    InvoiceStatus.VOID: "text-bg-dark",
}


class InvoiceTable(tables.Table):
    number = tables.Column(verbose_name="Invoice")
    period = tables.Column(accessor="period_start", verbose_name="Period", attrs=NOWRAP)
    status = tables.Column(verbose_name="Status")
    total = tables.Column(accessor="total_cents", verbose_name="Total", attrs=NOWRAP)
    due = tables.Column(accessor="paid_cents", verbose_name="Due", orderable=False, attrs=NOWRAP)
    issued_at = tables.DateTimeColumn(verbose_name="Issued", format="Y-m-d", attrs=NOWRAP)
    due_on = tables.DateColumn(verbose_name="Due on", format="Y-m-d", attrs=NOWRAP)

    class Meta:
        model = Invoice
        fields = ("number", "period", "status", "total", "due", "issued_at", "due_on")
        sequence = fields
        order_by = ("-period",)

    def render_number(self, record):
        url = reverse("billing:invoice", args=[record.organization.slug, record.pk])
        return format_html('<a href="{}">{}</a>', url, record.number or "Draft")

    def value_number(self, record):
        return record.number

    def render_period(self, record):
        return periods.period_label(record.period_start)

    def value_period(self, record):
        return periods.month_key(record.period_start)

    def render_status(self, record):
        return format_html(
            '<span class="badge {}" data-status="{}">{}</span>',
            STATUS_BADGES[record.status],
            record.status,
            record.get_status_display(),
        )

    def value_status(self, record):
        return record.status

    def render_total(self, record):
        return money.cents_text(record.total_cents)

    def value_total(self, record):
        return f"{record.total_cents / 100:.2f}"

    def render_due(self, record):
        return "—" if record.status == InvoiceStatus.VOID else money.cents_text(record.due_cents)

    def value_due(self, record):
        return f"{record.due_cents / 100:.2f}"


class PaymentTable(tables.Table):
    received_on = tables.DateColumn(verbose_name="Received", format="Y-m-d", attrs=NOWRAP)
    invoice = tables.Column(accessor="invoice__number", verbose_name="Invoice")
    amount = tables.Column(accessor="amount_cents", verbose_name="Amount", attrs=NOWRAP)
    kind = tables.Column(verbose_name="Paid by")
    reference = tables.Column(verbose_name="Reference", default="—")
    recorded_by_label = tables.Column(verbose_name="Recorded by", default="—")

    class Meta:
        model = Payment
        fields = ("received_on", "invoice", "amount", "kind", "reference", "recorded_by_label")
        sequence = fields
        order_by = ("-received_on",)

    def render_invoice(self, record):
        url = reverse("billing:invoice", args=[record.invoice.organization.slug, record.invoice_id])
        return format_html('<a href="{}">{}</a>', url, record.invoice.number)

    def render_amount(self, record):
        return money.cents_text(record.amount_cents)

    def value_amount(self, record):
        return f"{record.amount_cents / 100:.2f}"
