"""Prepaid credits and auto-recharge: every write to a `CreditAccount`.

    configure_credits(organization=..., enabled=True, auto_recharge=True, ...)
    grant_credits(organization=..., amount_micros=..., memo=..., actor=...)
    evaluate_recharges(organization_ids=[...])       # after each usage ingestion batch

Auto-recharge happens at most once per crossing of the threshold, however many workers race:
the evaluation locks the account row, reads the balance, and recharges only when the balance is
below the threshold *and* `below_threshold` is not already set; it sets the flag with the
recharge, in one transaction. The flag is cleared when an evaluation sees the balance at or
above the threshold again, which re-arms the next crossing. The charge goes through the payment
provider (billing/payments.py) against the default payment method, with a receipt (gap-free
number), an email to the Admins and Billing members, and a `credits.recharged` audit entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from orgs.models import Organization

from . import money, periods, selectors
from .cardguard import MESSAGE as CARD_MESSAGE
from .cardguard import contains_card_number
from .models import Charge, CreditAccount, CreditKind, CreditTransaction
from .notify import send_email
from .numbering import next_number
from .payments import provider

logger = logging.getLogger(__name__)

MAX_GRANT_MICROS = 1_000_000 * money.MICROS


def _announce(organization_id: int) -> None:
    from .services import announce_limits_changed

    announce_limits_changed(organization_id)


def _locked_account(organization: Organization) -> CreditAccount:
    CreditAccount.objects.get_or_create(organization=organization)
    return (
        CreditAccount.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(organization=organization)
    )


def _summary(account: CreditAccount) -> dict:
    return {
        "enabled": account.enabled,
        "auto_recharge": account.auto_recharge,
        "recharge_below": money.dollars(account.recharge_threshold_micros),
        "recharge_amount": money.dollars(account.recharge_amount_micros),
    }


@transaction.atomic
def configure_credits(
    *,
    organization: Organization,
    actor,
    enabled: bool,
    auto_recharge: bool,
    recharge_threshold_micros: int,
    recharge_amount_micros: int,
    expected_version: int | None,
) -> CreditAccount:
    account = _locked_account(organization)
    if expected_version is not None and account.version != expected_version:
        raise ValidationError(
            "Someone else changed the credit settings while you were editing them. Nothing was "
            "saved: the form now shows their values.",
            code="stale",
        )
    if auto_recharge:
        if recharge_amount_micros <= 0:
            raise ValidationError({"recharge_amount": "Enter the amount to recharge."})
        if recharge_threshold_micros < 0:
            raise ValidationError({"recharge_threshold": "Enter zero or more."})
        if recharge_amount_micros > MAX_GRANT_MICROS:
            raise ValidationError(
                {"recharge_amount": f"Recharge at most {money.dollars(MAX_GRANT_MICROS)}."}
            )
        if selectors.default_payment_method(organization) is None:
            raise ValidationError(
                {
                    "auto_recharge": "Add a payment method first: recharges are charged to the "
                    "default payment method."
                }
            )
    before = _summary(account)
    if enabled and not account.enabled:  # a new window opens with the balance carried
        account.window_started_at = timezone.now()
        account.opening_micros = account.carried_micros
        account.credited_micros = 0
        account.below_threshold = False
    elif account.enabled and not enabled:  # the window closes; its balance is carried
        account.carried_micros = selectors.credit_balance(account)
        account.window_started_at = None
    account.enabled = enabled
    account.auto_recharge = auto_recharge
    account.recharge_threshold_micros = recharge_threshold_micros
    account.recharge_amount_micros = recharge_amount_micros
    account.version += 1
    account.save()
    after = _summary(account)
    if before != after:
        record_event(
            action="credits.settings_changed",
            organization=organization,
            actor=actor,
            target=account,
            target_label="Prepaid credits",
            before=before,
            after=after,
        )
    _announce(organization.pk)
    return account


def _credit(account: CreditAccount, amount_micros: int) -> None:
    if account.enabled and account.window_started_at is not None:
        account.credited_micros += amount_micros
    else:
        account.carried_micros += amount_micros


@transaction.atomic
def grant_credits(
    *, organization: Organization, actor, amount_micros: int, memo: str
) -> CreditTransaction:
    memo = (memo or "").strip()
    if contains_card_number(memo):
        raise ValidationError({"memo": CARD_MESSAGE})
    if not memo:
        raise ValidationError({"memo": "Say why the credits are granted (a memo)."})
    if amount_micros <= 0:
        raise ValidationError({"amount": "Enter an amount above zero."})
    if amount_micros > MAX_GRANT_MICROS:
        raise ValidationError({"amount": f"Grant at most {money.dollars(MAX_GRANT_MICROS)}."})
    account = _locked_account(organization)
    _credit(account, amount_micros)
    account.save()
    entry = CreditTransaction.objects.create(
        account=account,
        kind=CreditKind.GRANT,
        amount_micros=amount_micros,
        memo=memo[:200],
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        created_by_label=getattr(actor, "email", "") or "",
    )
    record_event(
        action="credits.granted",
        organization=organization,
        actor=actor,
        target=account,
        target_label="Prepaid credits",
        after={"amount": money.dollars(amount_micros), "memo": memo[:200]},
    )
    _announce(organization.pk)
    return entry


def evaluate_recharges(*, organization_ids: Iterable[int] | None = None) -> list[int]:
    """Recharge the accounts whose balance fell below their threshold. Returns charge ids."""
    accounts = CreditAccount.objects.filter(enabled=True, auto_recharge=True)
    if organization_ids is not None:
        accounts = accounts.filter(organization_id__in=list(organization_ids))
    charged = []
    for account_id in accounts.values_list("pk", flat=True):
        charge = _evaluate_one(account_id)
        if charge is not None:
            charged.append(charge.pk)
            transaction.on_commit(lambda c=charge: _email_receipt(c), robust=True)
    return charged


@transaction.atomic
def _evaluate_one(account_id: int) -> Charge | None:
    account = (
        CreditAccount.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(pk=account_id, enabled=True, auto_recharge=True)
        .first()
    )
    if account is None or account.window_started_at is None:
        return None
    balance = selectors.credit_balance(account)
    if balance >= account.recharge_threshold_micros:
        if account.below_threshold:  # back above: the next crossing may recharge again
            account.below_threshold = False
            account.save(update_fields=["below_threshold"])
        return None
    if account.below_threshold:
        return None  # this crossing was recharged (or tried) already
    account.below_threshold = True
    organization = account.organization
    method = selectors.default_payment_method(organization)
    if method is None:
        account.save(update_fields=["below_threshold"])
        logger.warning("Auto-recharge of %s skipped: no default payment method", organization)
        return None
    amount = account.recharge_amount_micros
    now = timezone.now()
    receipt = next_number(organization, "receipt", now.year)
    result = provider().charge(
        organization=organization,
        payment_method=method,
        amount_micros=amount,
        description=f"Credit recharge {money.dollars(amount)}",
        idempotency_key=receipt,
    )
    charge = Charge.objects.create(
        organization=organization,
        payment_method=method,
        amount_micros=amount,
        description=f"Prepaid credits: automatic recharge of {money.dollars(amount)}",
        status=result.status,
        provider=provider().name,
        provider_reference=result.reference,
        receipt_number=receipt,
    )
    _credit(account, amount)
    account.save()
    CreditTransaction.objects.create(
        account=account,
        kind=CreditKind.RECHARGE,
        amount_micros=amount,
        charge=charge,
        memo=f"Balance {money.dollars(balance)} fell below "
        f"{money.dollars(account.recharge_threshold_micros)}",
        created_by_label="Console",
    )
    record_event(
        action="credits.recharged",
        organization=organization,
        actor_label="Console",
        target=charge,
        target_label=f"Receipt {receipt}",
        after={
            "amount": money.dollars(amount),
            "balance_before": money.dollars(balance),
            "threshold": money.dollars(account.recharge_threshold_micros),
            "payment_method": method.label,
            "receipt": receipt,
            "status": charge.status,
        },
    )
    _announce(organization.pk)
    return charge


def _email_receipt(charge: Charge) -> None:
    organization = charge.organization
    recipients = selectors.billing_recipients(organization)
    if not recipients:
        return
    context = {
        "organization": organization,
        "charge": charge,
        "amount": money.dollars(charge.amount_micros),
        "when": periods.moment_text(timezone.localtime(charge.created_at, organization.tzinfo)),
        "receipt_path": f"/o/{organization.slug}/billing/receipts/{charge.pk}/",
    }
    try:
        send_email("billing-recharge-receipt", recipients, context)
    except Exception:
        logger.exception("Could not email receipt %s", charge.receipt_number)
