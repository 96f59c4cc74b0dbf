from django.apps import AppConfig


class ViewerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "viewer"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects study_received -> pre-render)
