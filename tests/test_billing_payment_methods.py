"""Payment methods hold brand, last 4, expiry and holder name only: a full card number is refused
in any field of any billing form, and is found nowhere afterwards, in the database or the logs."""

import html
import logging

import pytest
from django.db import connection

from audit.models import AuditEvent
from billing.cardguard import contains_card_number, luhn_valid
from billing.models import PaymentMethod

pytestmark = pytest.mark.django_db

CARD = "4242424242424242"  # a Visa test number: passes the Luhn check
SPACED = "4242 4242 4242 4242"
BASE = "/o/acme-support/billing/"


def text(response) -> str:
    return html.unescape(response.content.decode())


def test_the_luhn_check_tells_card_numbers_from_other_digits():
    assert luhn_valid(CARD) and contains_card_number(f"card {SPACED} thanks")
    assert contains_card_number("5555-5555-5555-4444")
    assert not contains_card_number("4242424242424241")  # fails the checksum
    assert not contains_card_number("Invoice ACME-2026-0001, PO 12345678")
    assert not contains_card_number("4242")


def test_finance_adds_a_card_and_an_invoicing_method_with_one_default(world, client_for):
    client = client_for(world.billing)
    response = client.post(BASE + "payment-methods/new/?kind=card", {
        "kind": "card", "brand": "visa", "last4": "4242", "exp_month": "12", "exp_year": "2030",
        "holder_name": "Fran Finance",
    })  # fmt: skip
    assert response.status_code == 302
    client.post(
        BASE + "payment-methods/new/?kind=invoice",
        {"kind": "invoice", "payment_terms_days": "30", "make_default": "on"},
    )
    methods = {m.kind: m for m in PaymentMethod.objects.filter(organization=world.org)}
    assert methods["invoice"].is_default and not methods["card"].is_default
    page = text(client.get(BASE + "payment-methods/"))
    assert "Visa •••• 4242, expires 12/2030" in page and "Invoicing, net 30 days" in page
    client.post(BASE + f"payment-methods/{methods['card'].pk}/default/")
    assert PaymentMethod.objects.get(pk=methods["card"].pk).is_default
    client.post(BASE + f"payment-methods/{methods['card'].pk}/remove/")
    assert PaymentMethod.objects.get(pk=methods["invoice"].pk).is_default  # took over
    actions = list(AuditEvent.objects.filter(action__startswith="billing.payment_method")
                   .values_list("action", flat=True))  # fmt: skip
    assert sorted(actions) == ["billing.payment_method_added", "billing.payment_method_added",
                               "billing.payment_method_default_changed",
                               "billing.payment_method_removed"]  # fmt: skip


def test_an_expired_card_and_a_bad_last4_are_refused(world, client_for):
    client = client_for(world.admin)
    response = client.post(BASE + "payment-methods/new/?kind=card", {
        "kind": "card", "brand": "visa", "last4": "42a2", "exp_month": "1", "exp_year": "2020",
        "holder_name": "X",
    })  # fmt: skip
    assert "Enter the last 4 digits of the card." in text(response)
    response = client.post(BASE + "payment-methods/new/?kind=card", {
        "kind": "card", "brand": "visa", "last4": "4242", "exp_month": "1", "exp_year": "2020",
        "holder_name": "X",
    })  # fmt: skip
    assert "This card has expired." in text(response)
    assert not PaymentMethod.objects.exists()


def test_a_card_number_is_refused_in_any_field_and_stored_or_logged_nowhere(
    world, client_for, caplog
):
    caplog.set_level(logging.DEBUG)
    client = client_for(world.billing)
    submissions = [
        ("payment-methods/new/?kind=card", {"kind": "card", "brand": "visa", "last4": "4242",
         "exp_month": "12", "exp_year": "2030", "holder_name": CARD}),
        ("payment-methods/new/?kind=card", {"kind": "card", "brand": "visa", "last4": CARD,
         "exp_month": "12", "exp_year": "2030", "holder_name": "Fran"}),
        ("contact/", {"billing_email": "ap@acme.test", "legal_name": "Acme", "address": SPACED,
         "tax_id": "", "invoice_prefix": "ACME"}),
        ("contact/", {"billing_email": "ap@acme.test", "legal_name": "Acme", "address": "",
         "tax_id": CARD, "invoice_prefix": "ACME"}),
        ("limits/", {"enabled": "on", "cap": "1000", "thresholds": "50, 80, 100",
         "extra_recipients": f"a@b.test, {CARD}"}),
        ("limits/", {"enabled": "on", "cap": CARD, "thresholds": "50, 80, 100"}),
        ("credits/", {"action": "grant", "amount": "10", "memo": f"paid with {SPACED}"}),
    ]  # fmt: skip
    for path, data in submissions:
        response = client.post(BASE + path, data)
        assert response.status_code == 200, path
        body = text(response)
        assert "This looks like a full card number." in body, (path, data)
        assert CARD not in body and SPACED not in body  # not even echoed back
    assert not PaymentMethod.objects.exists()
    # A refused request is logged by Django (403): with its path, never its fields.
    member = client_for(world.member)
    assert member.post(BASE + "limits/", {"cap": CARD, "thresholds": CARD}).status_code == 403
    digits = (CARD, SPACED)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            for value in digits:
                cursor.execute(
                    f'SELECT count(*) FROM "{table}" AS r WHERE r::text LIKE %s',
                    [f"%{value}%"],
                )
                assert cursor.fetchone()[0] == 0, f"{value} found in {table}"
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert caplog.records  # the requests were logged…
    assert CARD not in logged and SPACED not in logged  # …without the number


def test_the_billing_contact_is_audited(world, client_for):
    client = client_for(world.admin)
    response = client.post(BASE + "contact/", {
        "billing_email": "ap@acme.test", "legal_name": "Acme Support Ltd", "address": "1 Road",
        "tax_id": "GB123456789", "invoice_prefix": "acme",
    })  # fmt: skip
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="billing.contact_changed")
    assert event.after["invoice_prefix"] == "ACME" and event.after["tax_id"] == "GB123456789"
    response = client.post(BASE + "contact/", {"invoice_prefix": "!!", "billing_email": "x"})
    assert "Use 2 to 12 letters or digits." in text(response)
    assert "Enter a valid email address." in text(response)
