"""Billing's emails, sent through the console's one email helper (`core.emails`): alerts,
recharge receipts, issued invoices. Templates: templates/emails/billing-*-{subject,body}.*"""

from __future__ import annotations

from core import emails


def send_email(name: str, to: str | list[str], ctx: dict) -> None:
    emails.send(emails.make_message(name, to, ctx))
