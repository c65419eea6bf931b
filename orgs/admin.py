from django.contrib import admin

from audit.services import record_event

from .models import Organization, Workspace


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """Site operators raise an organization's member limit here."""

    list_display = ["name", "slug", "member_limit", "require_mfa", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "created_at"]

    def save_model(self, request, obj, form, change):
        # Operator changes (the member limit) are audited like any other settings change.
        before = {field: form.initial.get(field) for field in form.changed_data}
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            record_event(
                action="org.settings_changed",
                organization=obj,
                actor=request.user,
                target=obj,
                before=before,
                after={field: form.cleaned_data[field] for field in form.changed_data},
            )


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "is_default", "archived_at"]
    search_fields = ["name", "organization__slug"]
    readonly_fields = ["is_default", "archived_at"]
