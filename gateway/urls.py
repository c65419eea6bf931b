from django.urls import path

from . import views

app_name = "gateway"

urlpatterns = [
    path("", views.upstream_settings, name="upstream"),
    path("workspaces/<int:workspace_id>/", views.workspace_gateway, name="workspace"),
    path(
        "workspaces/<int:workspace_id>/remove-override/",
        views.workspace_override_remove,
        name="override_remove",
    ),
]
