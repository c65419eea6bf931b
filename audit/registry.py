"""The one list of audit action names. Names are stable: stored rows and exports depend on them."""

ACTIONS: dict[str, str] = {
    # accounts (no organization)
    "user.signed_up": "Signed up",
    "user.logged_in": "Logged in",
    "user.login_failed": "Failed login",
    "user.logged_out": "Logged out",
    "user.password_changed": "Changed password",
    "user.password_reset": "Reset password",
    "user.mfa_added": "Added an MFA authenticator",
    "user.mfa_removed": "Removed an MFA authenticator",
    "user.mfa_reset": "Regenerated MFA recovery codes",
    # organizations and workspaces
    "org.created": "Created the organization",
    "org.settings_changed": "Changed organization settings",
    "workspace.created": "Created a workspace",
    "workspace.renamed": "Renamed a workspace",
    "workspace.archived": "Archived a workspace",
    "workspace.unarchived": "Restored a workspace",
    "workspace.default_changed": "Changed the default workspace",
    # members
    "member.added": "Added a member",
    "member.role_changed": "Changed a member's role",
    "member.removed": "Removed a member",
    "member.left": "Left the organization",
    "member.invited": "Invited a member",
    "member.joined": "Joined the organization",
    "invitation.resent": "Resent an invitation",
    "invitation.revoked": "Revoked an invitation",
    "invitation.accepted": "Accepted an invitation",
    "invitation.expired": "An invitation expired",
    "workspace_member.added": "Added a member to a workspace",
    "workspace_member.removed": "Removed a member from a workspace",
    # API keys
    "apikey.created": "Created an API key",
    "apikey.renamed": "Renamed an API key",
    "apikey.revoked": "Revoked an API key",
    "apikey.rotated": "Rotated an API key",
    "apikey.expired": "An API key expired",
    "adminkey.created": "Created an admin key",
    "adminkey.revoked": "Revoked an admin key",
    # gateway
    "gateway.upstream_changed": "Changed the upstream API configuration",
    "gateway.upstream_removed": "Removed the upstream API configuration",
    "gateway.policy_changed": "Changed a workspace's gateway policy",
}


def label_for(action: str) -> str:
    return ACTIONS.get(action, action)
