import django_tables2 as tables

from core.columns import WhenColumn

from .models import Invitation, Membership, Role

ALL_WORKSPACES = "All workspaces"


def _workspace_names(record) -> str:
    return ", ".join(w.name for w in record.workspaces.all())


class MemberTable(tables.Table):
    name = tables.Column(accessor="user__name", verbose_name="Name", order_by=("user__name",))
    email = tables.Column(accessor="user__email", verbose_name="Email", order_by=("user__email",))
    role = tables.Column()
    workspaces = tables.Column(empty_values=(), orderable=False, verbose_name="Workspaces")
    # Dates may wrap here: seven columns and the actions menu must fit 1280 px without the
    # sticky actions cell covering the MFA column.
    joined_at = WhenColumn(verbose_name="Joined", attrs={"td": {}})
    last_login = WhenColumn(
        accessor="user__last_login", verbose_name="Last login", default="Never", attrs={"td": {}}
    )
    mfa_enabled = tables.Column(verbose_name="MFA", order_by=("mfa_enabled",))
    actions = tables.TemplateColumn(
        template_name="members/member_actions.html",
        orderable=False,
        verbose_name="",
        exclude_from_export=True,
    )

    class Meta:
        model = Membership
        fields = (
            "name", "email", "role", "workspaces", "joined_at", "last_login", "mfa_enabled",
            "actions",
        )  # fmt: skip
        sequence = fields
        order_by = ("email",)
        empty_text = "No members."

    def render_name(self, value):
        return value or "—"

    def value_name(self, value):
        return value or ""

    def render_workspaces(self, record):
        if record.is_admin:
            return ALL_WORKSPACES
        return _workspace_names(record) or "None"

    def value_workspaces(self, record):
        return self.render_workspaces(record)

    def render_mfa_enabled(self, value):
        return "On" if value else "Off"

    def value_mfa_enabled(self, value):
        return self.render_mfa_enabled(value)


class InvitationTable(tables.Table):
    email = tables.Column()
    role = tables.Column()
    workspaces = tables.Column(empty_values=(), orderable=False, verbose_name="Workspaces")
    invited_by = tables.Column(accessor="invited_by__email", verbose_name="Invited by", default="—")
    # Dates may wrap, as on the member list: the Status column stays clear of the sticky
    # actions cell at 1280 px.
    sent_at = WhenColumn(verbose_name="Sent", attrs={"td": {}})
    expires_at = WhenColumn(verbose_name="Expires", attrs={"td": {}})
    state = tables.Column(accessor="state_value", verbose_name="Status", order_by=("state_value",))
    # In the CSV export only.
    created_at = WhenColumn(verbose_name="Created", visible=False)
    closed_at = WhenColumn(verbose_name="Closed", visible=False)
    actions = tables.TemplateColumn(
        template_name="members/invitation_actions.html",
        orderable=False,
        verbose_name="",
        exclude_from_export=True,
    )

    class Meta:
        model = Invitation
        fields = (
            "email", "role", "workspaces", "invited_by", "sent_at", "expires_at", "state",
            "created_at", "closed_at", "actions",
        )  # fmt: skip
        sequence = fields
        order_by = ("-sent_at",)
        empty_text = "No invitations."

    def render_workspaces(self, record):
        if record.role == Role.ADMIN:
            return ALL_WORKSPACES
        return _workspace_names(record) or "Default workspace"

    def value_workspaces(self, record):
        return self.render_workspaces(record)

    def render_state(self, record):
        return record.get_state_display()

    def value_state(self, record):
        return self.render_state(record)
