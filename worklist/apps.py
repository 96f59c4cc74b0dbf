from django.apps import AppConfig


class WorklistConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "worklist"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (study_received -> open_case; membership changes)
