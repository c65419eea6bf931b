"""allauth, taught about invitations: the emailed link proves the invitee owns the address."""

from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse

from .invitation_links import invitation_in_session, same_hash
from .services import invitation_problem


class AccountAdapter(DefaultAccountAdapter):
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
