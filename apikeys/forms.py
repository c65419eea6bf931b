import re
import secrets

from django import forms
from django.core.exceptions import ValidationError

from members.models import Membership
from members.selectors import workspaces_for
from orgs.models import Workspace

from . import selectors
from .services import ARCHIVED_WORKSPACE_MESSAGE, NAME_MAX_LENGTH, ROTATION_OVERLAPS


class DuplicateNameCheck:
    """A warning, not a refusal: the form is shown again once, saying which key has the name;
    submitting it again (the hidden field now set) goes ahead."""

    def check_duplicate_name(self, membership: Membership, exclude=None) -> None:
        name = self.cleaned_data.get("name")
        if not name or self.cleaned_data.get("same_name_ok"):
            return
        twin = selectors.same_named_keys(membership, name, exclude=exclude).first()
        if twin is None:
            return
        self.data = self.data.copy()
        self.data["same_name_ok"] = "1"
        self.add_error(
            "name",
            f"You already have a working key named {twin.name} ({twin.display}, workspace "
            f"{twin.workspace.name}). Two keys of one name are hard to tell apart: choose "
            "another name, or submit again to keep this one.",
        )


class KeyNameField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", NAME_MAX_LENGTH)
        kwargs.setdefault("help_text", "What uses it, e.g. Development, Production or Testing.")
        super().__init__(**kwargs)


class KeyWorkspaceField(forms.ModelChoiceField):
    """The member's active workspaces. One archived since the page was shown is refused in
    words, not with "Select a valid choice"."""

    def __init__(self, **kwargs):
        super().__init__(queryset=Workspace.objects.none(), empty_label=None, **kwargs)
        self.organization_id = None

    def to_python(self, value):
        try:
            return super().to_python(value)
        except ValidationError:
            # Only ASCII digits: str.isdigit() also accepts "²", which int() refuses.
            if (
                re.fullmatch(r"[0-9]{1,18}", str(value))
                and Workspace.objects.filter(
                    pk=value, organization_id=self.organization_id, archived_at__isnull=False
                ).exists()
            ):
                raise ValidationError(ARCHIVED_WORKSPACE_MESSAGE, code="archived") from None
            raise


FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")


class OneTimeTokenField(forms.CharField):
    """A hidden token minted with each blank form: the service takes a token once, so a
    resubmitted form (a reload of the page its POST answered) does its work only once."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


class KeyCreateForm(DuplicateNameCheck, forms.Form):
    form_token = OneTimeTokenField()
    same_name_ok = forms.BooleanField(required=False, widget=forms.HiddenInput)
    name = KeyNameField()
    workspace = KeyWorkspaceField()
    expires_on = forms.DateField(
        required=False,
        label="Expires on (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key works through the end of this day. Leave empty for no expiry.",
    )

    def __init__(self, *args, membership: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.membership = membership
        workspaces = workspaces_for(membership).order_by("-is_default", "name")
        self.fields["workspace"].queryset = workspaces
        self.fields["workspace"].organization_id = membership.organization_id
        if not self.is_bound:
            self.initial.setdefault("workspace", workspaces.first())
            self.initial["form_token"] = new_form_token()
        elif not FORM_TOKEN.fullmatch(self.data.get("form_token", "")):
            # An old or hand-made form: refused, and the form shown again with a good token.
            self.data = self.data.copy()
            self.data["form_token"] = new_form_token()
            self.stale = True

    stale = False

    def clean(self):
        cleaned = super().clean()
        if self.stale:
            raise ValidationError(
                "This form was out of date. Check the details and click Create Key again."
            )
        self.check_duplicate_name(self.membership)
        return cleaned


class KeyRenameForm(DuplicateNameCheck, forms.Form):
    same_name_ok = forms.BooleanField(required=False, widget=forms.HiddenInput)
    name = KeyNameField()

    def __init__(self, *args, key, membership: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.key, self.membership = key, membership

    def clean(self):
        cleaned = super().clean()
        if (cleaned.get("name") or "").strip().lower() != self.key.name.lower():
            # The key's owner's keys: an Admin renaming a member's key checks the member's.
            owner = Membership(organization_id=self.key.organization_id, user_id=self.key.owner_id)
            self.check_duplicate_name(owner, exclude=self.key)
        return cleaned


OVERLAP_LABELS = {
    "now": "No overlap: the old key stops working now",
    "1h": "1 hour",
    "24h": "24 hours",
    "7d": "7 days",
}


class KeyRotateForm(forms.Form):
    overlap = forms.ChoiceField(
        choices=[(value, OVERLAP_LABELS[value]) for value in ROTATION_OVERLAPS],
        initial="24h",
        widget=forms.RadioSelect,
        label="Keep the old key working for",
        help_text="Time to deploy the new key everywhere. Then the old key expires.",
    )


class AdminKeyCreateForm(forms.Form):
    name = KeyNameField(help_text="What uses it, e.g. Terraform, HR sync or Finance reports.")
