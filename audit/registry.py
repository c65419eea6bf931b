"""The one list of audit actions, and how each reads (Sentry's `render()` per event is the model).

Names are stable: stored rows, exports and filters depend on them. To add an action:

1. Add `"area.verb_past": "Label"` to ACTIONS. The label is short and names no object ("Revoked
   an API key"): it is what the action filter offers.
2. Add the sentence the log shows to SENTENCES, written after the actor: "revoked API key
   {target}". Placeholders: {target} (the target's label), {before[field]} and {after[field]}
   (values of the event's before/after; a missing one reads "—"; values in VALUE_LABELS read as
   words). For anything a format string cannot say, add a function to RENDERERS instead.
3. If the action is about security (sign-ins, MFA, keys, members and roles, billing, settings),
   make sure its prefix is in ALWAYS_RECORDED: it is recorded even when an organization turned
   its audit log off.
4. Record it from the service that makes the change: `record_event(action=..., organization=...,
   actor=..., target=..., before=..., after=...)`, inside the service's transaction.
5. Write a test that produces it: tests/test_audit_coverage.py fails for an action no test makes.
"""

from collections.abc import Callable
from typing import Any

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
    "user.notifications_changed": "Changed their email notifications",
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
    # the audit log itself
    "audit.archived": "Archived old audit events",
    # billing
    "billing.limit_changed": "Changed a spending limit",
    "billing.thresholds_changed": "Changed a spending limit's alert thresholds",
    "billing.alert_sent": "Sent a spending alert",
    "billing.increase_requested": "Asked for a higher spending limit",
    "billing.increase_approved": "Approved a spending limit increase",
    "billing.increase_denied": "Denied a spending limit increase",
    "billing.payment_method_added": "Added a payment method",
    "billing.payment_method_removed": "Removed a payment method",
    "billing.payment_method_default_changed": "Changed the default payment method",
    "billing.contact_changed": "Changed the billing contact",
    "invoice.issued": "Issued an invoice",
    "invoice.payment_recorded": "Recorded a payment",
    "invoice.paid": "An invoice was paid in full",
    "invoice.voided": "Voided an invoice",
    "credits.settings_changed": "Changed prepaid credits and auto-recharge",
    "credits.granted": "Granted credits",
    "credits.recharged": "Recharged credits automatically",
    # usage and prices (price rows are global: their events are in the site's chain)
    "usage.spike_flagged": "Flagged a usage spike",
    "usage.import_key_saved": "Saved the Anthropic Admin API key of the usage import",
    "usage.import_key_removed": "Removed the Anthropic Admin API key of the usage import",
    "price.list_loaded": "Loaded a price list",
    "price.changed": "Changed a model price",
    "price.deleted": "Deleted a model price",
    "usage.repriced": "Repriced usage",
}

SENTENCES: dict[str, str] = {
    "user.signed_up": "signed up",
    "user.logged_in": "signed in",
    "user.login_failed": "failed to sign in as {after[email]}",
    "user.logged_out": "signed out",
    "user.password_changed": "changed their password",
    "user.password_reset": "reset their password by email",
    "user.mfa_added": "added a {after[type]} authenticator",
    "user.mfa_removed": "removed a {after[type]} authenticator",
    "user.mfa_reset": "regenerated their MFA {after[type]}",
    "user.notifications_changed": "turned the weekly usage digest {after[weekly_digest]}",
    "org.created": "created the organization {after[name]} (/o/{after[slug]}/)",
    "org.settings_changed": "changed the settings of {target}",
    "workspace.created": "created workspace {target}",
    "workspace.renamed": "renamed workspace {before[name]} to {after[name]}",
    "workspace.archived": "archived workspace {target}",
    "workspace.unarchived": "restored workspace {target}",
    "workspace.default_changed": "made {target} the default workspace",
    "member.added": "added {target} as {after[role]}",
    "member.role_changed": "changed {target}'s role from {before[role]} to {after[role]}",
    "member.removed": "removed {target} ({before[role]}) from the organization",
    "member.left": "left the organization",
    "member.invited": "invited {after[email]} as {after[role]}",
    "member.joined": "joined as {after[role]}",
    "invitation.resent": "resent the invitation of {target}",
    "invitation.revoked": "revoked the invitation of {target}",
    "invitation.accepted": "accepted the invitation of {target}",
    "invitation.expired": "the invitation of {target} expired",
    "workspace_member.added": "added {target} to workspace {after[workspace]}",
    "workspace_member.removed": "removed {target} from workspace {before[workspace]}",
    "apikey.created": "created API key {target} in workspace {after[workspace]}",
    "apikey.renamed": "renamed API key {before[name]} to {after[name]}",
    "apikey.revoked": "revoked API key {target}",
    "apikey.rotated": "rotated API key {target} into {after[replaced_by]}",
    "apikey.expired": "API key {target} expired",
    "gateway.upstream_changed": "changed the upstream API configuration ({target})",
    "gateway.upstream_removed": "removed the upstream API configuration ({target})",
    "gateway.policy_changed": "changed the gateway rules of workspace {target}",
    "adminkey.created": "created admin key {target}",
    "adminkey.revoked": "revoked admin key {target}",
    "audit.archived": "archived {after[events]} audit events up to {after[through]}",
    "billing.limit_changed": "changed the spending limit of {target}: {after[monthly_cap]} a "
    "month, on: {after[enabled]}",
    "billing.thresholds_changed": "changed the alert thresholds of {target} from "
    "{before[thresholds]} to {after[thresholds]} %",
    "billing.alert_sent": "sent the {after[threshold_percent]} % spending alert of {target} "
    "({after[spend]} of {after[cap]}, {after[period]}) to {after[recipients]}",
    "billing.increase_requested": "asked for a monthly cap of {after[cap]} on {target}",
    "billing.increase_approved": "approved a monthly cap of {after[cap]} on {target}",
    "billing.increase_denied": "denied the request for a monthly cap of {before[cap]} on {target}",
    "billing.payment_method_added": "added payment method {target}",
    "billing.payment_method_removed": "removed payment method {target}",
    "billing.payment_method_default_changed": "made {target} the default payment method",
    "billing.contact_changed": "changed the billing contact",
    "invoice.issued": "issued invoice {after[number]} for {after[period]}: {after[total]}",
    "invoice.payment_recorded": "recorded a payment of {after[amount]} ({after[kind]}) on {target}",
    "invoice.paid": "{target} was paid in full ({after[total]})",
    "invoice.voided": "voided {target}: {after[reason]}",
    "credits.settings_changed": "changed prepaid credits: on: {after[enabled]}, auto-recharge: "
    "{after[auto_recharge]}",
    "credits.granted": "granted {after[amount]} of credits: {after[memo]}",
    "credits.recharged": "recharged credits by {after[amount]} ({target}, balance was "
    "{after[balance_before]})",
    "usage.import_key_saved": "saved {target} to import usage from Anthropic",
    "usage.import_key_removed": "removed {target}: usage is no longer imported from Anthropic",
    "usage.spike_flagged": "flagged a spike of {after[scope]} on {after[day]}: {after[cost]}, "
    "over {after[factor]} × the 7-day average of {after[average]}",
    "price.list_loaded": "loaded the price list {after[file]}: {after[created]} prices added, "
    "{after[updated]} changed, {after[unchanged]} unchanged",
    "price.changed": "set the price of {target}",
    "price.deleted": "deleted the price of {target}",
    "usage.repriced": "repriced the usage of {after[period]} at the prices now on file: "
    "{after[events]} requests, cost {before[cost]} → {after[cost]}",
}

# Recorded even when an organization has turned its audit log off: sign-ins and MFA, API keys,
# members and roles, billing, settings (so turning the log off is itself recorded).
ALWAYS_RECORDED: tuple[str, ...] = (
    "user.", "apikey.", "member.", "workspace_member.", "org.",
    "billing.", "invoice.", "credits.", "gateway.upstream_", "audit.", "adminkey.",
    "usage.import_key_",
    "price.", "usage.repriced",
)  # fmt: skip

# How stored values read in sentences and diffs.
VALUE_LABELS: dict[str, dict[Any, str]] = {
    "role": {"admin": "Admin", "member": "Member", "billing": "Billing-only"},
    "type": {"totp": "TOTP", "recovery_codes": "recovery codes", "webauthn": "security key"},
    "weekly_digest": {True: "on", False: "off"},
}
FIELD_LABELS: dict[str, str] = {
    "require_mfa": "Require two-factor authentication",
    "audit_logging": "Audit logging",
    "usage_retention_months": "Raw usage kept (months)",
    "spike_factor": "Spike factor",
    "member_limit": "Member limit",
    "default_workspace": "Default workspace",
    "expires_at": "Expires",
    "revoked_at": "Revoked",
    "replaced_by": "Replaced by",
    "rotated_from": "Rotated from",
    "max_tokens": "Max tokens per request",
    "allowed_models": "Allowed models",
    "base_url": "Base URL",
    "api_key": "API key",
    "api_keys_revoked": "API keys revoked",
    "weekly_digest": "Weekly usage digest",
}
# What a target type is called ("<app>.<model>", as stored in AuditEvent.target_type).
TARGET_TYPES: dict[str, str] = {
    "orgs.organization": "Organization",
    "orgs.workspace": "Workspace",
    "members.user": "Person",
    "members.invitation": "Invitation",
    "apikeys.apikey": "API key",
    "gateway.upstreamconfig": "Upstream configuration",
    "usage.usagespike": "Usage spike",
    "usage.anthropicusagesource": "Usage import",
}

# Actions whose sentence a format string cannot say: a function of the event.
RENDERERS: dict[str, Callable[[Any], str]] = {}


def label_for(action: str) -> str:
    return ACTIONS.get(action, action)


def is_always_recorded(action: str) -> bool:
    return action.startswith(ALWAYS_RECORDED)


def field_label(field: str) -> str:
    return FIELD_LABELS.get(field) or field.replace("_", " ").capitalize()


def value_label(field: str, value: Any) -> Any:
    labels = VALUE_LABELS.get(field, {})
    try:
        return labels.get(value, value)
    except TypeError:  # unhashable (a list): shown as it is
        return value


def target_type_label(target_type: str) -> str:
    if not target_type:
        return ""
    if target_type in TARGET_TYPES:
        return TARGET_TYPES[target_type]
    return target_type.rpartition(".")[2].replace("_", " ").capitalize()


class _Values(dict):
    """before/after for format strings: missing fields read "—", known values read as words."""

    def __missing__(self, field):
        return "—"

    def __getitem__(self, field):
        if field not in self:
            return "—"
        value = value_label(field, super().__getitem__(field))
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) or "none"
        return "—" if value is None or value == "" else value


def describe(event) -> str:
    """What happened, after the actor: "revoked API key Deploy (csk_AbCd…wxyz)"."""
    renderer = RENDERERS.get(event.action)
    if renderer is not None:
        return renderer(event)
    sentence = SENTENCES.get(event.action)
    if sentence is None:
        return label_for(event.action).lower() + (
            f": {event.target_label}" if event.target_label else ""
        )
    return sentence.format_map(
        {
            "target": event.target_label or "—",
            "before": _Values(event.before or {}),
            "after": _Values(event.after or {}),
        }
    )


def render(event) -> str:
    """The whole line: "admin@example.com revoked API key Deploy (csk_AbCd…wxyz)"."""
    return f"{event.actor_label or 'The system'} {describe(event)}"
