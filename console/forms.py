from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import slugify

from orgs.models import Workspace, slug_validators
from orgs.services import validate_slug


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
        if not cleaned.get("slug") and cleaned.get("name") and "slug" not in self.errors:
            derived = slugify(cleaned["name"])[:48].strip("-")
            if len(derived) < 3:
                self.add_error("slug", "Choose a slug of at least 3 characters.")
            else:
                cleaned["slug"] = derived
        if cleaned.get("slug") and "slug" not in self.errors:
            # Checked here too so every problem shows at once; the service checks again.
            try:
                validate_slug(cleaned["slug"], exclude_pk=self.organization_pk)
            except ValidationError as error:
                self.add_error("slug", error.error_dict["slug"])
        return cleaned


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
