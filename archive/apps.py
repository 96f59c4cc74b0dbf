from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    name = "archive"
    verbose_name = "DICOM archive"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from accounts.access_changes import access_changed
        from accounts.tokens import token_revoked

        from .dicomweb import grants

        user_logged_out.connect(grants.on_logged_out, dispatch_uid="archive.grants.logout")
        token_revoked.connect(grants.on_token_revoked, dispatch_uid="archive.grants.revoke")
        access_changed.connect(grants.on_access_changed, dispatch_uid="archive.grants.access")
