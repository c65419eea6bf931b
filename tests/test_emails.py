"""One way to send an email (core/emails.py): templates found by one name, the site's name and
the console's address in every email, attachments and headers, retries on a dropped connection;
and allauth's emails sent the same way."""

import copy
import re
import socket
import threading

import pytest
from django.core import mail

from core import emails
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def email_templates(settings, tmp_path):
    """A `notice` email (subject / text / HTML) in a template directory of its own."""
    folder = tmp_path / "emails"
    folder.mkdir()
    (folder / "notice-subject.txt").write_text("  Notice for\n {{ organization.name }}  \n")
    (folder / "notice-body.txt").write_text(
        '{% extends "emails/base.txt" %}{% block content %}Dear {{ who }},\n'
        "see {{ base_url }}/o/{{ organization.slug }}/ ({{ organization_url }}).{% endblock %}"
    )
    (folder / "notice-body.html").write_text(
        '{% extends "emails/base.html" %}{% block content %}<p>Dear {{ who }},</p>'
        '<a href="{{ organization_url }}">open</a>{% endblock %}'
    )
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [tmp_path, *templates[0]["DIRS"]]
    settings.TEMPLATES = templates
    settings.CONSOLE_BASE_URL = "https://console.example.com"
    settings.CONSOLE_SITE_NAME = "Acme Console"
    return folder


def test_a_message_is_built_from_the_three_templates_of_one_name(email_templates):
    org = OrganizationFactory(name="Tom & Jerry's", slug="tom-jerry")
    message = emails.make_message(
        "notice", "pat@example.com", {"organization": org, "who": "<Pat>"}
    )
    assert message.to == ["pat@example.com"]
    # The subject is one line with the site's prefix; text is not HTML-escaped.
    assert message.subject == "[Acme Console] Notice for Tom & Jerry's"
    assert message.body.startswith("Dear <Pat>,\nsee https://console.example.com/o/tom-jerry/ ")
    assert "(https://console.example.com/o/tom-jerry/)" in message.body
    assert "Sent by Acme Console (https://console.example.com/) for Tom & Jerry's." in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert "<p>Dear &lt;Pat&gt;,</p>" in html
    assert '<a href="https://console.example.com/o/tom-jerry/">open</a>' in html
    assert "for Tom &amp; Jerry&#x27;s." in html
    assert re.fullmatch(r"<.+@localhost>", message.extra_headers["Message-ID"])


def test_attachments_and_headers_travel_with_the_message(email_templates, mailoutbox):
    org = OrganizationFactory()
    message = emails.make_message(
        "notice",
        ["a@example.com", "b@example.com"],
        {"organization": org, "who": "team"},
        attachments=[("usage.csv", "day,cost\n2026-01-05,1.00\n", "text/csv")],
        headers={"X-Console-Alert": "spike"},
    )
    emails.send(message)
    [sent] = mailoutbox
    assert sent.to == ["a@example.com", "b@example.com"]
    assert sent.attachments == [("usage.csv", "day,cost\n2026-01-05,1.00\n", "text/csv")]
    raw = sent.message().as_string()
    assert "X-Console-Alert: spike" in raw and 'filename="usage.csv"' in raw


def test_an_unknown_email_name_fails_loudly(email_templates):
    from django.template import TemplateDoesNotExist

    with pytest.raises(TemplateDoesNotExist, match=r"emails/no-such-email-subject\.txt"):
        emails.make_message("no-such-email", "pat@example.com", {})


class FlakySMTPServer:
    """A real SMTP server on 127.0.0.1 that drops the first `drops` connections unanswered (as a
    mail relay restarting does), then accepts mail."""

    def __init__(self, drops: int):
        self.drops = drops
        self.connections = 0
        self.messages: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections <= self.drops:
                conn.close()
                continue
            with conn, conn.makefile("rwb") as stream:
                self._converse(stream)

    def _converse(self, stream):
        def reply(line):
            stream.write(line.encode() + b"\r\n")
            stream.flush()

        reply("220 flaky ESMTP")
        while line := stream.readline().decode():
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                reply("250 flaky")
            elif verb == "DATA":
                reply("354 go on")
                body = []
                while (data := stream.readline().decode()) not in (".\r\n", ""):
                    body.append(data)
                self.messages.append("".join(body))
                reply("250 queued")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("250 ok")

    def close(self):
        self.sock.close()


@pytest.fixture
def smtp_backend(settings):
    def use(server):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""

    return use


def test_a_dropped_smtp_connection_is_retried(email_templates, smtp_backend):
    server = FlakySMTPServer(drops=1)
    smtp_backend(server)
    try:
        emails.send(emails.make_message("notice", "pat@example.com", {"who": "Pat"}))
    finally:
        server.close()
    assert server.connections == 2
    [received] = server.messages
    assert "Subject: [Acme Console] Notice for" in received


def test_a_mail_server_that_keeps_dropping_is_reported(email_templates, smtp_backend):
    from smtplib import SMTPServerDisconnected

    server = FlakySMTPServer(drops=10)
    smtp_backend(server)
    try:
        with pytest.raises(SMTPServerDisconnected):
            emails.send(emails.make_message("notice", "pat@example.com", {"who": "Pat"}))
    finally:
        server.close()
    assert server.connections == emails.SEND_ATTEMPTS


def test_account_emails_name_the_console_and_link_to_its_address(client, settings):
    """Issue 12 item 10: not "Hello from 127.0.0.1:8102!" with links on the request's host."""
    settings.CONSOLE_BASE_URL = "https://console.example.com"
    client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "name": "New Person", "password1": "a-long-pass-phrase-1",
         "password2": "a-long-pass-phrase-1"},
        HTTP_HOST="127.0.0.1:8102",
    )  # fmt: skip
    [message] = mail.outbox
    assert message.subject.startswith("[Console] ")
    assert message.body.startswith("Hello from Console,")
    assert "127.0.0.1:8102" not in message.body
    assert "https://console.example.com/accounts/confirm-email/" in message.body
    assert message.body.rstrip().endswith("Console: https://console.example.com/")
