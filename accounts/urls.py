"""URLs of sign-in and account pages, and the small API endpoint to test a token."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("account/", views.account, name="account"),
    path(
        "account/password/",
        views.PasswordChangeView.as_view(),
        name="password-change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password-change-done",
    ),
    path("account/tokens/", views.token_create, name="token-create"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("account/mfa/verify/", views.mfa_verify, name="mfa-verify"),
    path("account/mfa/enrol/", views.mfa_enrol, name="mfa-enrol"),
    path("account/mfa/recovery-codes/", views.recovery_codes, name="mfa-recovery-codes"),
    path("account/session/", views.session_status, name="session-status"),
    path("account/session/keepalive/", views.session_keepalive, name="session-keepalive"),
    path("api/whoami", views.whoami, name="api-whoami"),
]
