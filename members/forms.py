from django import forms
from django.core.exceptions import ValidationError

from .models import Role


class SignupNameForm(forms.Form):
    """Extra field on allauth's sign-up form."""

    name = forms.CharField(max_length=150, required=False, label="Your name")

    def signup(self, request, user) -> None:
        user.name = self.cleaned_data.get("name", "").strip()
        user.save(update_fields=["name"])


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: field errors on fields, the rest on top."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
