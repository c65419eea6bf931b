from django import forms

from members.models import Membership
from members.selectors import workspaces_for

from .services import NAME_MAX_LENGTH, ROTATION_OVERLAPS


class KeyNameField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", NAME_MAX_LENGTH)
        kwargs.setdefault("help_text", "What uses it, e.g. Development, Production or Testing.")
        super().__init__(**kwargs)


class KeyCreateForm(forms.Form):
    name = KeyNameField()
    workspace = forms.ModelChoiceField(queryset=None, empty_label=None)
    expires_on = forms.DateField(
        required=False,
        label="Expires on (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key works through the end of this day. Leave empty for no expiry.",
    )

    def __init__(self, *args, membership: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        workspaces = workspaces_for(membership).order_by("-is_default", "name")
        self.fields["workspace"].queryset = workspaces
        if not self.is_bound:
            self.initial.setdefault("workspace", workspaces.first())


class KeyRenameForm(forms.Form):
    name = KeyNameField()


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
