"""Invoices from the usage rollups: issued at period close, idempotently, numbered without gaps;
totals equal the rollups to the cent; payments, voiding, printable page, CSV and PDF."""

import html
from datetime import UTC, date, datetime

import pytest
from django.core import mail
from django.db.models import Sum

from audit.models import AuditEvent
from billing import invoicing
from billing.models import Invoice, InvoiceStatus, LineGroup
from tests.factories import WorkspaceFactory, daily_usage
from usage.models import UsageDaily

pytestmark = pytest.mark.django_db

AFTER_NOVEMBER = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
AFTER_DECEMBER = datetime(2027, 1, 1, 2, 0, tzinfo=UTC)
TODAY = datetime.now(UTC).date().isoformat()
BASE = "/o/acme-support/billing/"


def november_usage(world):
    production = WorkspaceFactory(organization=world.org, name="Production")
    rows = [  # odd micro-dollar amounts, so rounding matters
        (date(2026, 11, 1), 1_234_567, world.workspace.pk, "claude-haiku-4-5"),
        (date(2026, 11, 15), 2_345_678, production.pk, "claude-haiku-4-5"),
        (date(2026, 11, 30), 3_456_789, production.pk, "claude-sonnet-4-5"),
        (date(2026, 11, 30), 4_999, 0, "claude-opus-4-1"),
        (date(2026, 10, 31), 9_000_000, production.pk, "claude-opus-4-1"),  # October
        (date(2026, 12, 1), 8_000_000, production.pk, "claude-opus-4-1"),  # December
    ]
    for day, cost, workspace_id, model in rows:
        daily_usage(world.org, day, cost, workspace_id=workspace_id, model=model, requests=3)
    return production


def test_period_close_issues_one_invoice_whose_total_equals_the_rollups(
    world, django_capture_on_commit_callbacks
):
    production = november_usage(world)
    with django_capture_on_commit_callbacks(execute=True):
        issued = invoicing.close_periods(now=AFTER_NOVEMBER)
    assert len(issued) == 1
    invoice = Invoice.objects.get(pk=issued[0])
    exact = UsageDaily.objects.filter(
        organization_id=world.org.pk, day__gte=date(2026, 11, 1), day__lt=date(2026, 12, 1)
    ).aggregate(total=Sum("cost_micros"))["total"]
    assert invoice.usage_micros == exact == 7_042_033
    assert invoice.total_cents == 704  # $7.04, half up from $7.042033
    assert invoice.number == "ACME-2026-0001"
    assert invoice.status == InvoiceStatus.OPEN
    by_model = {
        line.description: line.amount_cents for line in invoice.lines.filter(group=LineGroup.MODEL)
    }
    assert by_model == {"claude-haiku-4-5": 358, "claude-opus-4-1": 0, "claude-sonnet-4-5": 346}
    by_ws = {
        line.description: line.amount_cents
        for line in invoice.lines.filter(group=LineGroup.WORKSPACE)
    }
    assert by_ws == {"No workspace": 1, "Development": 123, "Production": 580}
    assert sum(by_model.values()) == sum(by_ws.values()) == invoice.total_cents
    assert production.name in by_ws
    assert AuditEvent.objects.filter(action="invoice.issued", organization=world.org).count() == 1
    assert any("Invoice ACME-2026-0001 for November 2026: $7.04" in m.subject for m in mail.outbox)


def test_closing_again_changes_nothing_and_numbers_have_no_gaps(world):
    november_usage(world)
    first = invoicing.close_periods(now=AFTER_NOVEMBER)
    assert invoicing.close_periods(now=AFTER_NOVEMBER) == []
    invoice = Invoice.objects.get(pk=first[0])
    assert (invoice.number, invoice.lines.count()) == ("ACME-2026-0001", 6)  # 3 models, 3 ws
    invoicing.close_periods(now=AFTER_DECEMBER)
    numbers = list(Invoice.objects.order_by("period_start").values_list("number", flat=True))
    assert numbers == ["ACME-2026-0001", "ACME-2027-0001"]  # the year it was issued
    assert Invoice.objects.count() == 2


def test_the_close_waits_for_late_usage_and_skips_quiet_months(world):
    november_usage(world)
    # Half an hour into December, November is still in its grace: October is closed.
    invoicing.close_periods(now=datetime(2026, 12, 1, 0, 30, tzinfo=UTC))
    assert list(Invoice.objects.values_list("period_start", flat=True)) == [date(2026, 10, 1)]
    invoicing.close_periods(now=AFTER_NOVEMBER)
    assert Invoice.objects.filter(organization=world.org).count() == 2
    assert not Invoice.objects.filter(organization=world.other_org).exists()  # no usage


def test_payments_are_recorded_and_a_void_invoice_cannot_be_paid(world, client_for):
    november_usage(world)
    [invoice_id] = invoicing.close_periods(now=AFTER_NOVEMBER)
    client = client_for(world.billing)
    url = f"/o/acme-support/billing/invoices/{invoice_id}/"
    response = client.post(
        url + "pay/",
        {
            "amount": "9.99",
            "kind": "bank_transfer",
            "reference": "TX-1",
            "received_on": TODAY,
        },
    )
    assert "That is more than the $7.04 due." in html.unescape(response.content.decode())
    response = client.post(
        url + "pay/", {"amount": "abc", "kind": "bank_transfer", "received_on": TODAY}
    )
    assert "Enter an amount in US dollars" in response.content.decode()
    client.post(
        url + "pay/",
        {"amount": "5", "kind": "bank_transfer", "reference": "TX-1", "received_on": TODAY},
    )
    assert Invoice.objects.get(pk=invoice_id).status == InvoiceStatus.OPEN
    client.post(url + "pay/", {"amount": "2.04", "kind": "card", "received_on": TODAY})
    invoice = Invoice.objects.get(pk=invoice_id)
    assert (invoice.status, invoice.paid_cents, invoice.due_cents) == ("paid", 704, 0)
    assert AuditEvent.objects.filter(action="invoice.paid").count() == 1
    page = client.get("/o/acme-support/billing/payments/").content.decode()
    assert "TX-1" in page and "$5.00" in page
    # A paid invoice cannot be voided; a void one cannot be paid.
    response = client.post(url + "void/", {"reason": "duplicate"})
    assert "cannot be voided" in html.unescape(response.content.decode())
    invoicing.close_periods(now=AFTER_DECEMBER)
    december = Invoice.objects.get(period_start=date(2026, 12, 1))
    client.post(f"/o/acme-support/billing/invoices/{december.pk}/void/", {"reason": "Test"})
    assert Invoice.objects.get(pk=december.pk).status == InvoiceStatus.VOID
    response = client.post(
        f"/o/acme-support/billing/invoices/{december.pk}/pay/",
        {"amount": "1", "kind": "card", "received_on": TODAY},
    )
    assert response.status_code == 200
    assert "This invoice is void: it cannot be paid." in response.content.decode()
    assert AuditEvent.objects.filter(action="invoice.voided").count() == 1


def test_invoice_pages_list_detail_print_csv_and_pdf(world, client_for):
    november_usage(world)
    [invoice_id] = invoicing.close_periods(now=AFTER_NOVEMBER)
    client = client_for(world.member)  # read-only, but sees invoices
    listing = client.get("/o/acme-support/billing/invoices/").content.decode()
    assert "ACME-2026-0001" in listing and "$7.04" in listing
    export = client.get("/o/acme-support/billing/invoices/?_export=csv").content.decode()
    assert "ACME-2026-0001" in export
    detail = client.get(f"/o/acme-support/billing/invoices/{invoice_id}/").content.decode()
    assert "Record a payment" not in detail and "Production" in detail
    printable = client.get(f"/o/acme-support/billing/invoices/{invoice_id}/print/")
    assert b"@media print" in printable.content and b"$7.04" in printable.content
    csv_text = client.get(f"/o/acme-support/billing/invoices/{invoice_id}/csv/").content.decode()
    assert csv_text.splitlines()[-1].endswith(",total,Total,,,,,,7.04,7042033")
    pdf = client.get(f"/o/acme-support/billing/invoices/{invoice_id}/pdf/")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_invoice_of_another_organization_is_not_found(world, client_for):
    november_usage(world)
    [invoice_id] = invoicing.close_periods(now=AFTER_NOVEMBER)
    client = client_for(world.outsider)
    assert client.get(f"/o/globex/billing/invoices/{invoice_id}/").status_code == 404


def test_workspace_statements_allocate_costs(world, client_for):
    production = november_usage(world)
    client = client_for(world.billing)
    page = client.get("/o/acme-support/billing/statements/?month=2026-11").content.decode()
    assert "$5.80" in page  # Production in November: 2.345678 + 3.456789
    csv_text = client.get(
        f"/o/acme-support/billing/statements/{production.pk}/2026-11/?format=csv"
    ).content.decode()
    assert "claude-sonnet-4-5" in csv_text and "3456789" in csv_text
    assert (
        client.get(f"/o/acme-support/billing/statements/{production.pk}/nope/").status_code == 404
    )


def test_billing_lists_take_as_many_queries_for_many_rows_as_for_few(world, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apikeys.services import create_api_key
    from billing import services

    client = client_for(world.billing)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            Invoice.objects.create(organization=world.org, period_start=date(2000 + i, 1, 1),
                                   period_end=date(2000 + i, 2, 1), status="open",
                                   number=f"ACME-{2000 + i}-0001", total_cents=i)  # fmt: skip
            key = create_api_key(membership=world.admin, workspace=world.workspace,
                                 name=f"k{i}", actor=None).key  # fmt: skip
            services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                                      cap_micros=10_000_000, thresholds=[50],
                                      scope="api_key", api_key=key)  # fmt: skip

    client.get(BASE)  # the session's first request writes it: not a list's cost
    add(2, 0)
    few = {p: queries(BASE + p) for p in ("invoices/", "limits/", "", "payments/")}
    add(20, 2)
    many = {p: queries(BASE + p) for p in ("invoices/", "limits/", "", "payments/")}
    assert many == few
