"""allauth, taught about invitations (the emailed link proves the invitee owns the address) and
sending its emails the console's way (core/emails.py: the site's name, links on
CONSOLE_BASE_URL)."""

from dataclasses import dataclass

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from core import emails
from core.client_ip import request_client_ip

from .invitation_links import invitation_in_session, same_hash
from .services import invitation_problem


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request) -> str:
        """The address rate limits key on: the client's behind trusted proxies
        (TRUSTED_PROXY_COUNT), never the proxy's, so one client cannot lock out everyone behind
        the same proxy."""
        ip = request_client_ip(request)
        if ip is None:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def is_open_for_signup(self, request) -> bool:
        """`CONSOLE_SIGNUP=invite`: only a browser that opened a valid invitation link sees the
        sign-up form (and members.forms.SignupNameForm takes invited addresses only)."""
        if settings.CONSOLE_SIGNUP == "open":
            return True
        return self._open_invitation(request) is not None

    def _open_invitation(self, request):
        """The still-valid invitation whose link this browser opened, if any."""
        invitation, token_hash = invitation_in_session(request)
        if invitation is None or not same_hash(invitation.token_hash, token_hash):
            return None
        if invitation_problem(invitation):
            return None
        return invitation

    def is_email_verified(self, request, email: str) -> bool:
        """Signing up from an invitation link with the invited address: that address received
        the link, so it is verified and the invitee is not asked to confirm it again."""
        invitation = self._open_invitation(request)
        if invitation is not None and invitation.email.lower() == email.lower():
            return True
        return super().is_email_verified(request, email)

    def get_signup_redirect_url(self, request) -> str:
        if self._open_invitation(request) is not None:
            return reverse("invitations:accept")
        return super().get_signup_redirect_url(request)

    def get_login_redirect_url(self, request) -> str:
        if self._open_invitation(request) is not None:
            return reverse("invitations:accept")
        return super().get_login_redirect_url(request)

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """allauth's templates (account/email/<prefix>_subject.txt, _message.txt), with the
        console's name instead of the request's host ("Hello from 127.0.0.1:8102!") and links
        on CONSOLE_BASE_URL, sent by the one helper."""
        request = allauth_context.request
        ctx = {
            "request": request,
            "email": email,
            "current_site": ConsoleSite(name=emails.site_context()["site_name"]),
            **emails.site_context(),
            **_links_on_console_address(context, request),
        }
        emails.send(self.render_mail(template_prefix, email, ctx))


@dataclass(frozen=True)
class ConsoleSite:
    """What allauth's templates read as `current_site`."""

    name: str

    @property
    def domain(self) -> str:
        return emails.site_domain()


def _links_on_console_address(context: dict, request) -> dict:
    """allauth builds its links from the request (`http://<Host>/accounts/…`): put them on the
    console's public address instead."""
    if request is None:
        return dict(context)
    origin = request.build_absolute_uri("/")
    return {
        name: emails.absolute_url(value[len(origin) :])
        if isinstance(value, str) and value.startswith(origin)
        else value
        for name, value in context.items()
    }
