"""allauth's forms as the console uses them (ACCOUNT_FORMS). Kept apart from members/forms.py,
which allauth's own forms module imports (ACCOUNT_SIGNUP_FORM_CLASS): importing allauth's forms
from there would be circular."""

from allauth.account.forms import LoginForm


class LoginWithEmailForm(LoginForm):
    """The sign-in form with the address filled in from `?email=`, as allauth's sign-up form
    does: the invitation page's Sign in link carries the invited address."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.request is not None:
            email = self.request.GET.get("email", "").strip()
            if email and len(email) <= 320:
                self.fields["login"].initial = email
