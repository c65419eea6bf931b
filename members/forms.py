from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from orgs.models import Workspace
from orgs.selectors import active_workspaces

from .models import Role
from .selectors import has_pending_invitation


class SignupNameForm(forms.Form):
    """Extra field on allauth's sign-up form (allauth's form inherits from this one), and, with
    `CONSOLE_SIGNUP=invite`, the rule that only invited addresses create accounts."""

    name = forms.CharField(max_length=150, required=False, label="Your name")

    def clean(self):
        cleaned = super().clean()
        email = cleaned.get("email")
        if settings.CONSOLE_SIGNUP == "invite" and email and not has_pending_invitation(email):
            self.add_error(
                "email",
                f"{email} has no invitation to this console: sign-up is by invitation. Use the "
                "address your invitation was sent to.",
            )
        return cleaned

    def signup(self, request, user) -> None:
        user.name = self.cleaned_data.get("name", "").strip()
        user.save(update_fields=["name"])


class RoleForm(forms.Form):
    role = forms.ChoiceField(
        choices=Role.choices,
        widget=forms.RadioSelect,
        error_messages={
            "invalid_choice": "Choose Admin, Member or Billing-only.",
            "required": "Choose Admin, Member or Billing-only.",
        },
    )


class WorkspaceChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} (the default workspace)" if obj.is_default else obj.name


class InviteForm(RoleForm):
    field_order = ["email", "role", "workspaces"]

    email = forms.EmailField(
        max_length=254,
        error_messages={"invalid": "Enter a valid email address, like name@example.com."},
    )
    workspaces = WorkspaceChoiceField(
        queryset=Workspace.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="For Members and Billing-only users. None chosen: the default workspace. "
        "Admins are in every workspace.",
    )

    def __init__(self, *args, organization, **kwargs):
        kwargs.setdefault("initial", {"role": Role.MEMBER})
        super().__init__(*args, **kwargs)
        self.fields["workspaces"].queryset = active_workspaces(organization).order_by(
            "-is_default", "name"
        )


class MemberWorkspacesForm(forms.Form):
    workspaces = WorkspaceChoiceField(
        queryset=Workspace.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspaces"].queryset = active_workspaces(organization).order_by(
            "-is_default", "name"
        )


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: field errors on fields, the rest on top."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
