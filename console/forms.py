import re
import zoneinfo
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import slugify

from orgs.models import RESERVED_SLUGS, Workspace, slug_validators
from orgs.services import validate_slug


def derive_slug(name: str) -> str | None:
    """A valid slug made from an organization's name ("Acme_Labs" -> "acme-labs"), or None."""
    slug = re.sub(r"-{2,}", "-", slugify(name).replace("_", "-"))[:48].strip("-")
    try:
        for validator in slug_validators:
            validator(slug)
    except ValidationError:
        return None
    return slug


class OrganizationCreateForm(forms.Form):
    organization_pk: int | None = None

    name = forms.CharField(max_length=100, label="Organization name")
    slug = forms.CharField(
        max_length=48,
        required=False,
        label="URL slug",
        help_text="Lowercase letters, digits and hyphens. Leave empty to make it from the name.",
    )

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the organization a name.")
        return name

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slug in RESERVED_SLUGS:  # said first: "v1" is reserved, not merely too short
            raise forms.ValidationError(f"“{slug}” is reserved by the console. Choose another.")
        if slug:
            for validator in slug_validators:
                validator(slug)
        return slug

    def clean(self):
        cleaned = super().clean()
        if "slug" in self.errors:
            return cleaned
        if cleaned.get("slug"):
            # Checked here too so every problem shows at once; the service checks again.
            try:
                validate_slug(cleaned["slug"], exclude_pk=self.organization_pk)
            except ValidationError as error:
                self.add_error("slug", error.error_dict["slug"])
        elif cleaned.get("name"):
            cleaned["slug"] = self._slug_from_name(cleaned["name"])
        return cleaned

    def _slug_from_name(self, name: str) -> str:
        # The user left the slug empty: a problem with the one made for them is the name's.
        derived = derive_slug(name)
        if derived is None:
            self.add_error(
                "name",
                "No URL slug can be made from this name: it needs at least 3 letters or digits. "
                "Type a slug below.",
            )
            return ""
        try:
            validate_slug(derived, exclude_pk=self.organization_pk)
        except ValidationError:
            why = "is reserved" if derived in RESERVED_SLUGS else "is already taken"
            self.add_error(
                "name",
                f"This name makes the URL slug “{derived}”, which {why}. Type another below.",
            )
            return ""
        return derived


def timezone_choices() -> list[tuple[str, str]]:
    zones = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})
    return [("UTC", "UTC"), *((zone, zone.replace("_", " ")) for zone in zones if zone != "UTC")]


class OrganizationSettingsForm(OrganizationCreateForm):
    default_workspace = forms.ModelChoiceField(
        queryset=Workspace.objects.none(),
        label="Default workspace for new members",
        empty_label=None,
        help_text="Invited members join it unless the invitation names other workspaces.",
    )
    timezone = forms.ChoiceField(
        label="Time zone",
        choices=timezone_choices,
        help_text="Billing periods, usage days, the weekly digest and every date shown use it.",
        error_messages={
            "invalid_choice": "“%(value)s” is not a time zone we know. Choose one from the "
            "list, e.g. UTC or Europe/Paris."
        },
    )
    require_mfa = forms.BooleanField(
        required=False,
        label="Require two-factor authentication for all members",
        help_text="Members without it are asked to set it up before they enter the organization.",
    )
    audit_logging = forms.BooleanField(
        required=False,
        label="Record every change in the audit log",
        help_text="Recommended. When off, sign-ins, MFA, API keys, members and roles, billing "
        "and settings changes are still recorded; turning it off is recorded too.",
    )
    usage_retention_months = forms.IntegerField(
        label="Keep raw usage events for (months)",
        min_value=1,
        max_value=120,
        help_text="Older single requests are dropped; hourly and daily totals stay. 1–120.",
    )
    spike_factor = forms.DecimalField(
        label="Spike alert factor",
        min_value=Decimal("1.1"),
        max_value=Decimal("100"),
        max_digits=5,
        decimal_places=2,
        help_text="A day costing more than this many times the trailing 7-day average is "
        "flagged, and Admins are emailed. At least 1.1.",
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization_pk = organization.pk
        self.fields["slug"].required = True
        self.fields[
            "slug"
        ].help_text = (
            "Lowercase letters, digits and hyphens. Old links keep working: they redirect."
        )
        self.fields["default_workspace"].queryset = organization.workspaces.filter(
            archived_at__isnull=True
        )

    @classmethod
    def initial_for(cls, organization, default_workspace) -> dict:
        return {
            "name": organization.name,
            "slug": organization.slug,
            "default_workspace": default_workspace,
            "timezone": organization.timezone,
            "require_mfa": organization.require_mfa,
            "audit_logging": organization.audit_logging,
            "usage_retention_months": organization.usage_retention_months,
            "spike_factor": organization.spike_factor,
        }


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=64)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the workspace a name.")
        return name
