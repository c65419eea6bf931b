"""One way to send an email: `send(make_message(name, to, ctx))`.

Every email the console sends (key reminders, invitations, spike alerts, the weekly digest,
billing alerts, security notices, allauth's account emails) is built here, the way Healthchecks'
hc/lib/emails.py does it::

    from core import emails

    emails.send(
        emails.make_message(
            "key-expiring",                      # the template name, see below
            key.owner.email,                     # one address or a list
            {"key": key, "organization": key.organization},
            attachments=[("usage.csv", csv_text, "text/csv")],  # optional
            headers={"X-Console-Alert": "spike"},               # optional
        )
    )

Templates, found by the one name (use hyphens):

    templates/emails/<name>-subject.txt   one line; "[<site name>] " is put in front of it
    templates/emails/<name>-body.txt      the plain-text body
    templates/emails/<name>-body.html     the HTML body; extend "emails/base.html"

Subject and text body are rendered without HTML escaping (no `{% autoescape off %}` needed);
the HTML body is escaped as usual. Every template also receives:

    site_name           the console's name (CONSOLE_SITE_NAME, default "Console")
    base_url            the console's address, CONSOLE_BASE_URL, without a trailing slash;
                        links are absolute:
                        `{{ base_url }}{% url 'apikeys:list' organization.slug %}`,
                        never from a request's Host header, so tasks and requests agree
    organization_name   and `organization_url`, when the context has an `organization`

`absolute_url(path)` gives the same absolute links in Python.

`send(message)` sends at once, in the calling thread, and retries twice on a dropped SMTP
connection; it raises if the mail server refuses. So call it where a delay or a failure is
acceptable: in a Celery task, or after the commit (`transaction.on_commit(..., robust=True)`)
so a mail server failure never undoes the change the email is about. Tests read the messages
from Django's `mail.outbox`.
"""

from __future__ import annotations

import time
from email.utils import make_msgid
from smtplib import SMTPDataError, SMTPServerDisconnected
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context
from django.template.loader import get_template, render_to_string

TEMPLATE_DIR = "emails"
SEND_ATTEMPTS = 3


def site_context() -> dict[str, str]:
    """What every email template may use: the site's name and address."""
    return {"site_name": settings.CONSOLE_SITE_NAME, "base_url": settings.CONSOLE_BASE_URL}


def absolute_url(path: str) -> str:
    """`path` ("/o/acme/api-keys/") on the console's public address (CONSOLE_BASE_URL)."""
    return settings.CONSOLE_BASE_URL + "/" + path.lstrip("/")


def site_domain() -> str:
    """The host (and port) of CONSOLE_BASE_URL: "console.example.com"."""
    return urlsplit(settings.CONSOLE_BASE_URL).netloc


def subject_with_prefix(subject: str) -> str:
    return f"[{settings.CONSOLE_SITE_NAME}] {' '.join(subject.split())}"


def _render_plain(template_name: str, context: dict[str, Any]) -> str:
    # Subjects and text bodies are not HTML: "Tom & Jerry" must not arrive as "Tom &amp; Jerry".
    template = get_template(template_name).template
    return template.render(Context(context, autoescape=False))


def make_message(
    name: str,
    to: str | list[str],
    ctx: dict[str, Any],
    *,
    attachments: list[tuple[str, str | bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMultiAlternatives:
    """The email `name` (templates/emails/<name>-{subject.txt,body.txt,body.html}) to `to`.

    `attachments` are (filename, content, mimetype) triples; `headers` are extra headers.
    """
    context = {**site_context(), **ctx}
    organization = context.get("organization")
    if organization is not None:
        context.setdefault("organization_name", organization.name)
        context.setdefault("organization_url", absolute_url(f"/o/{organization.slug}/"))
    subject = subject_with_prefix(_render_plain(f"{TEMPLATE_DIR}/{name}-subject.txt", context))
    text = _render_plain(f"{TEMPLATE_DIR}/{name}-body.txt", context)
    html = render_to_string(f"{TEMPLATE_DIR}/{name}-body.html", context)

    all_headers = {"Message-ID": make_msgid(domain=_sender_domain()), **(headers or {})}
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to] if isinstance(to, str) else list(to),
        headers=all_headers,
    )
    message.attach_alternative(html, "text/html")
    for filename, content, mimetype in attachments or ():
        message.attach(filename, content, mimetype)
    return message


def _sender_domain() -> str:
    return settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >") or "localhost"


def send(message: EmailMultiAlternatives) -> None:
    """Send `message` now. A dropped SMTP connection is retried (3 attempts, 1 s apart); any
    other failure, or the last attempt's, is raised to the caller."""
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            message.connection = None  # each attempt opens a fresh connection
            message.send()
            return
        except (SMTPServerDisconnected, SMTPDataError):
            if attempt == SEND_ATTEMPTS:
                raise
            time.sleep(1)
