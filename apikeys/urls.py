from django.urls import path

from . import views

app_name = "apikeys"

urlpatterns = [
    path("", views.ApiKeyListView.as_view(), name="list"),
    path("new/", views.key_create, name="create"),
    path("<int:key_id>/rename/", views.key_rename, name="rename"),
    path("<int:key_id>/revoke/", views.key_revoke, name="revoke"),
    path("<int:key_id>/rotate/", views.key_rotate, name="rotate"),
    path("admin/", views.AdminKeyListView.as_view(), name="admin_keys"),
    path("admin/new/", views.admin_key_create, name="admin_key_create"),
    path("admin/<int:admin_key_id>/revoke/", views.admin_key_revoke, name="admin_key_revoke"),
]
