from django import forms

from .models import Role


class SignupNameForm(forms.Form):
    """Extra field on allauth's sign-up form."""

    name = forms.CharField(max_length=150, required=False, label="Your name")

    def signup(self, request, user) -> None:
        user.name = self.cleaned_data.get("name", "").strip()
        user.save(update_fields=["name"])


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
