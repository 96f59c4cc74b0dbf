from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from archive import views as archive_views

urlpatterns = [
    path("", archive_views.home, name="home"),
    path("studies/<str:study_uid>/", archive_views.study_detail, name="study_detail"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("audit/", include("audit.urls")),
    path("", include("accounts.urls")),
    path("org/", include("accounts.orgadmin_urls")),
    path("dicomweb/", include("archive.dicomweb.urls")),
    path("identity/", include("identity.urls")),
    path("viewer/", include("viewer.urls")),
    path("reports/", include("reports.urls")),
    path("worklist/", include("worklist.urls")),
]
