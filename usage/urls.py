from django.urls import path

from . import import_views, views

app_name = "usage"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("import/", import_views.import_settings, name="import"),
    path("import/remove/", import_views.import_remove, name="import_remove"),
]
