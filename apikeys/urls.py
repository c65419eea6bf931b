from django.urls import path

from . import views

app_name = "apikeys"

urlpatterns = [
    path("", views.ApiKeyListView.as_view(), name="list"),
    path("new/", views.key_create, name="create"),
    path("<int:key_id>/rename/", views.key_rename, name="rename"),
    path("<int:key_id>/revoke/", views.key_revoke, name="revoke"),
    path("<int:key_id>/rotate/", views.key_rotate, name="rotate"),
]
