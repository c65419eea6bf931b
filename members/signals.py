"""Audit records for account events that allauth and django.contrib.auth announce by signal."""

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals
from django.dispatch import receiver

from audit.services import record_event

from .access import MFA_ENROLLED_SESSION_KEY


def _record_for_user(action: str, user, after: dict | None = None) -> None:
    record_event(action=action, actor=user, target=user, after=after)


@receiver(auth_signals.user_logged_in)
def on_logged_in(sender, request, user, **kwargs):
    _record_for_user("user.logged_in", user)


@receiver(auth_signals.user_logged_out)
def on_logged_out(sender, request, user, **kwargs):
    if user is not None:
        _record_for_user("user.logged_out", user)


@receiver(auth_signals.user_login_failed)
def on_login_failed(sender, credentials, request=None, **kwargs):
    # Django masks the password in `credentials`; keep only the address that was tried.
    attempted = str(credentials.get("email") or credentials.get("username") or "")[:254]
    record_event(action="user.login_failed", actor_label=attempted, after={"email": attempted})


@receiver(account_signals.user_signed_up)
def on_signed_up(sender, request, user, **kwargs):
    _record_for_user("user.signed_up", user)


@receiver(account_signals.password_changed)
@receiver(account_signals.password_set)
def on_password_changed(sender, request, user, **kwargs):
    _record_for_user("user.password_changed", user)


@receiver(account_signals.password_reset)
def on_password_reset(sender, request, user, **kwargs):
    _record_for_user("user.password_reset", user)


@receiver(mfa_signals.authenticator_added)
def on_mfa_added(sender, request, user, authenticator, **kwargs):
    _record_for_user("user.mfa_added", user, after={"type": authenticator.type})
    if request is not None and hasattr(request, "session"):
        # Adding it took a valid code (after re-authenticating): this session has proved it.
        request.session[MFA_ENROLLED_SESSION_KEY] = str(user.pk)


@receiver(mfa_signals.authenticator_removed)
def on_mfa_removed(sender, request, user, authenticator, **kwargs):
    _record_for_user("user.mfa_removed", user, after={"type": authenticator.type})


@receiver(mfa_signals.authenticator_reset)
def on_mfa_reset(sender, request, user, authenticator, **kwargs):
    _record_for_user("user.mfa_reset", user, after={"type": authenticator.type})
