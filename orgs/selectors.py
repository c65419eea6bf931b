from .models import Organization, Workspace


def default_workspace(organization: Organization) -> Workspace | None:
    return organization.workspaces.filter(is_default=True).first()


def active_workspaces(organization: Organization):
    return organization.workspaces.filter(archived_at__isnull=True)


def workspaces_for_list(organization: Organization):
    return organization.workspaces.all()
