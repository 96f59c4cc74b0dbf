from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Organisations and access"

    def ready(self) -> None:
        from . import access_changes

        access_changes.connect()
