from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from . import health
from .views import audit, organizations, profile, site, workspaces
from .views import settings as settings_views

# The Django admin signs in through allauth (rate limits, MFA) rather than its own form.
admin.autodiscover()
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "Console administration"

handler403 = "console.views.site.permission_denied"

org_patterns = [
    path("", organizations.org_home, name="org_home"),
    path("settings/", settings_views.org_settings, name="org_settings"),
    path("settings/upstream/", include("gateway.urls")),
    path("workspaces/", workspaces.WorkspaceListView.as_view(), name="workspaces"),
    path("workspaces/new/", workspaces.workspace_create, name="workspace_create"),
    path(
        "workspaces/<int:workspace_id>/rename/",
        workspaces.workspace_rename,
        name="workspace_rename",
    ),
    path(
        "workspaces/<int:workspace_id>/archive/",
        workspaces.workspace_archive,
        name="workspace_archive",
    ),
    path("audit/", audit.AuditLogView.as_view(), name="audit_log"),
    path("audit/<int:event_id>/", audit.audit_event, name="audit_event"),
    path("audit/export.jsonl", audit.audit_export_chain, name="audit_export_chain"),
    path("members/", include("members.urls")),
    path("api-keys/", include("apikeys.urls")),
    path("billing/", include("billing.urls")),
    path("usage/", include("usage.urls")),
]

urlpatterns = [
    path("", site.home, name="home"),
    # Answered by console.health.HealthEndpointsMiddleware before the host check; named here.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("orgs/new/", organizations.org_create, name="org_create"),
    path("profile/", profile.profile, name="profile"),
    path("invitations/", include("members.invitation_urls")),
    path("o/<slug:slug>/", include(org_patterns)),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
