"""Billing's emails, sent through the console's one email helper (`core.emails`): alerts,
recharge receipts, issued invoices. Templates: templates/emails/billing-*-{subject,body}.*"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def send_email(name: str, to: str | list[str], ctx: dict) -> None:
    try:
        from core import emails
    except ImportError:
        emails = None
    if emails is not None and hasattr(emails, "make_message"):
        emails.send(emails.make_message(name, to, ctx))
        return
    # Until the shared helper is on main: the same templates, rendered the same way.
    context = {"base_url": settings.CONSOLE_BASE_URL, "site_name": "Console", **ctx}
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=f"[Console] {subject}",
        body=render_to_string(f"emails/{name}-body.txt", context),
        to=[to] if isinstance(to, str) else list(to),
    )
    message.attach_alternative(render_to_string(f"emails/{name}-body.html", context), "text/html")
    message.send()
