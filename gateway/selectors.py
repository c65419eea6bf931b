from dataclasses import dataclass

from orgs.models import Organization

from .models import UpstreamConfig, WorkspacePolicy


def upstream_configs(organization: Organization) -> list[UpstreamConfig]:
    """The organization's upstream (workspace null) first, then workspace overrides."""
    return list(
        UpstreamConfig.objects.filter(organization=organization)
        .select_related("workspace")
        .order_by("workspace__name")
    )


def workspace_policies(organization: Organization) -> dict[int, WorkspacePolicy]:
    return {
        p.workspace_id: p
        for p in WorkspacePolicy.objects.filter(workspace__organization=organization)
    }


@dataclass(frozen=True)
class UpstreamInEffect:
    """Which upstream the gateway follows for an organization's keys (outside workspaces with
    their own), and why, in words for the settings page. None as `base_url`: requests are
    refused."""

    base_url: str | None
    source: str  # "own", "default" or "none"
    reason: str


def upstream_in_effect(organization: Organization) -> UpstreamInEffect:
    """The same decision as routing.load_route, without resolving the host (no DNS lookup
    for a page view)."""
    from . import crypto, routing

    config = UpstreamConfig.objects.filter(organization=organization, workspace=None).first()
    if config is not None:
        try:
            api_key = crypto.decrypt(config.api_key_encrypted)
        except Exception:
            return UpstreamInEffect(
                None, "none", "The saved API key can no longer be decrypted (the console's "
                "encryption keys changed): save the key again.",
            )  # fmt: skip
        problem = routing._stored_problem(config, api_key)
        if problem is not None:
            return UpstreamInEffect(None, "none", f"The saved upstream is refused: {problem}")
        return UpstreamInEffect(
            config.base_url, "own", "This organization's own upstream, saved below."
        )
    default = routing.default_upstream()
    if default is not None:
        return UpstreamInEffect(
            default.base_url, "default",
            "The console's default upstream, set by its operator, because this organization "
            "has not saved one of its own. Save one below to use your own Anthropic API key.",
        )  # fmt: skip
    return UpstreamInEffect(
        None, "none", "This organization has no upstream and the console has no default: "
        "requests made with its keys are refused until you save one below.",
    )  # fmt: skip
