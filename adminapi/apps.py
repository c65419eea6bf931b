from django.apps import AppConfig


class AdminApiConfig(AppConfig):
    name = "adminapi"
    verbose_name = "Admin API"

    def ready(self) -> None:
        from . import views  # noqa: F401  (registers the endpoints: adminapi.api.ENDPOINTS)
