from django.contrib import admin

from audit.services import record_event

from . import money
from .models import SharedUpstreamAllowance


def _cap_text(micros):
    return "no cap" if micros is None else money.dollars(micros)


@admin.register(SharedUpstreamAllowance)
class SharedUpstreamAllowanceAdmin(admin.ModelAdmin):
    """Operators raise (or lift) an organization's monthly cap on the shared default upstream
    (GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP) here. Audited and announced to the gateway."""

    list_display = ("organization", "monthly_cap_micros", "note", "updated_at")
    search_fields = ("organization__name", "organization__slug")
    autocomplete_fields = ("organization",)

    def save_model(self, request, obj, form, change):
        before = form.initial.get("monthly_cap_micros") if change else "the default"
        super().save_model(request, obj, form, change)
        record_event(
            action="billing.limit_changed",
            organization=obj.organization,
            actor=request.user,
            target=obj,
            target_label="Shared upstream allowance",
            before={"monthly_cap": before if before == "the default" else _cap_text(before)},
            after={"monthly_cap": _cap_text(obj.monthly_cap_micros), "note": obj.note},
        )
        from .services import announce_limits_changed

        announce_limits_changed(obj.organization_id)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        from .services import announce_limits_changed

        announce_limits_changed(obj.organization_id)
