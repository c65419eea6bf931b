import datetime as dt

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.columns import WhenColumn, table_zone
from core.templatetags.when import when as when_html

from .models import AdminKey, ApiKey, KeyStatus

STATUS_BADGES = {
    KeyStatus.ACTIVE: "text-bg-success",
    KeyStatus.REVOKED: "text-bg-danger",
    KeyStatus.EXPIRED: "text-bg-secondary",
}


class ApiKeyTable(tables.Table):
    name = tables.Column()
    key = tables.Column(accessor="prefix", verbose_name="Key", order_by=("prefix", "last4"))
    workspace = tables.Column(accessor="workspace__name", verbose_name="Workspace")
    owner = tables.Column(accessor="owner__email", verbose_name="Owner", default="—")
    status = tables.Column(empty_values=(), orderable=False, verbose_name="Status")
    # Dates may wrap here: eight columns and the actions menu must fit 1280 px without the
    # sticky actions cell covering the Expires column (as on the Members page).
    created_at = WhenColumn(verbose_name="Created", attrs={"td": {}})
    last_used_at = WhenColumn(verbose_name="Last used", default="Never", attrs={"td": {}})
    expires_at = WhenColumn(verbose_name="Expires", default="Never", attrs={"td": {}})
    revoked_at = WhenColumn(verbose_name="Revoked", visible=False)
    revoked_by = tables.Column(
        accessor="revoked_by_label", verbose_name="Revoked by", visible=False
    )
    actions = tables.TemplateColumn(
        template_name="apikeys/key_actions.html",
        orderable=False,
        verbose_name="",
        exclude_from_export=True,
    )

    class Meta:
        model = ApiKey
        fields = (
            "name", "key", "workspace", "owner", "status", "created_at", "last_used_at",
            "expires_at", "revoked_at", "revoked_by", "actions",
        )  # fmt: skip
        sequence = fields
        order_by = ("-created_at",)
        empty_text = "No API keys."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = timezone.now()  # one "now" for every row's status

    def render_key(self, record):
        return format_html('<code class="text-nowrap">{}</code>', record.display)

    def value_key(self, record):
        return record.display

    def render_status(self, record):
        status = KeyStatus(record.status_at(self.now))
        badge = format_html(
            '<span class="badge {}" data-status="{}">{}</span>',
            STATUS_BADGES[status],
            status.value,
            status.label,
        )
        # One block: at phone width a stacked cell lays its children side by side.
        if status != KeyStatus.REVOKED:
            return format_html("<div>{}{}</div>", badge, self._rotation_note(record, status))
        return format_html(
            # The line may break inside the address: it must not widen the column past 1280 px.
            '<div>{}<div class="small text-body-secondary wrap-anywhere" data-testid="revoked-by">'
            "{}{}{}</div></div>",
            badge,
            f"by {record.revoked_by_label}, " if record.revoked_by_label else "",
            when_html(record.revoked_at, table_zone(self)),
            f" ({record.revoke_reason})" if record.revoke_reason else "",
        )

    def value_status(self, record):
        return record.status_at(self.now)

    def _rotation_note(self, record, status):
        """Keys of one rotation name each other: "rotated → csk_…, this one expires in 23 h" on the
        old key's row, "rotated from csk_…, old one expires in 23 h" on the new one's."""
        notes = []
        if record.replaced_by_id is not None:
            ends = (
                f"this one expires in {time_left(record.expires_at - self.now)}"
                if status == KeyStatus.ACTIVE
                else "this one has expired"
            )
            notes.append(
                format_html("rotated → <code>{}</code>, {}", record.replaced_by.display, ends)
            )
        # None when no key was rotated into this one (the reverse accessor's AttributeError).
        replaced = getattr(record, "replaces", None)
        if replaced is not None:
            still = replaced.status_at(self.now) == KeyStatus.ACTIVE
            notes.append(
                format_html(
                    "rotated from <code>{}</code>, {}",
                    replaced.display,
                    f"old one expires in {time_left(replaced.expires_at - self.now)}"
                    if still and replaced.expires_at
                    else "old one has expired",
                )
            )
        return format_html_join(
            "",
            '<div class="small text-body-secondary" data-testid="rotation">{}</div>',
            ((note,) for note in notes),
        )


def time_left(delta: dt.timedelta) -> str:
    """ "23 h", "45 min", "6 days": how long a rotated key keeps working, roughly."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


class AdminKeyTable(tables.Table):
    name = tables.Column()
    key = tables.Column(accessor="prefix", verbose_name="Key", order_by=("prefix", "last4"))
    owner = tables.Column(accessor="owner__email", verbose_name="Owner", default="—")
    status = tables.Column(empty_values=(), orderable=False, verbose_name="Status")
    created_at = WhenColumn(verbose_name="Created")
    last_used_at = WhenColumn(verbose_name="Last used", default="Never")
    revoked_at = WhenColumn(verbose_name="Revoked", visible=False)
    actions = tables.TemplateColumn(
        template_name="apikeys/admin_key_actions.html",
        orderable=False,
        verbose_name="",
        exclude_from_export=True,
    )

    class Meta:
        model = AdminKey
        fields = (
            "name", "key", "owner", "status", "created_at", "last_used_at", "revoked_at",
            "actions",
        )  # fmt: skip
        sequence = fields
        order_by = ("-created_at",)
        empty_text = "No admin keys."

    def render_key(self, record):
        return format_html('<code class="text-nowrap">{}</code>', record.display)

    def value_key(self, record):
        return record.display

    def render_status(self, record):
        status = KeyStatus(record.status)
        return format_html(
            '<span class="badge {}" data-status="{}">{}</span>',
            STATUS_BADGES[status],
            status.value,
            status.label,
        )

    def value_status(self, record):
        return record.status
