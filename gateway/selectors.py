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
