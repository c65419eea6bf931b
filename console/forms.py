import re

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
        validators=slug_validators,
        help_text="Used in URLs: /o/<slug>/. Lowercase letters, digits and hyphens. "
        "Leave empty to derive it from the name.",
    )

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the organization a name.")
        return name

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


class OrganizationSettingsForm(OrganizationCreateForm):
    require_mfa = forms.BooleanField(
        required=False,
        label="Require two-factor authentication for all members",
        help_text="Members without it are asked to set it up before they enter the organization.",
    )
    default_workspace = forms.ModelChoiceField(
        queryset=Workspace.objects.none(),
        label="Default workspace for new members",
        empty_label=None,
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization_pk = organization.pk
        self.fields["slug"].required = True
        self.fields["slug"].help_text = "Used in URLs: /o/<slug>/. Changing it changes every link."
        self.fields["default_workspace"].queryset = organization.workspaces.filter(
            archived_at__isnull=True
        )


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=64)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the workspace a name.")
        return name
