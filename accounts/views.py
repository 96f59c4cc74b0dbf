"""Sign-in pages: MFA verification and enrolment, the account page with API tokens, session
status for the idle-timeout warning, and /api/whoami for API clients to test a token.

Thin on purpose: the rules are in mfa.py and tokens.py; the middleware decides who may reach
these pages.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp.plugins.otp_static.models import StaticDevice

from . import mfa
from .auditing import record
from .forms import CheckedPasswordChangeForm, CodeForm, TokenForm
from .middleware import LAST_ACTIVITY_KEY
from .models import ApiToken
from .tokens import issue_token, revoke_token, token_or_session_required


def _next_url(request: HttpRequest) -> str:
    """The page to continue to after MFA, only if it is ours (no open redirect)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(settings.LOGIN_REDIRECT_URL)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    """Second step of sign-in: a TOTP code or one recovery code."""
    user = request.user
    if not mfa.has_confirmed_device(user):
        return redirect(f"{reverse('mfa-enrol')}?{request.GET.urlencode()}")
    if mfa.is_verified(user):
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        device = mfa.verify_code(user, code)
        if device is not None:
            mfa.login_device(request, device)
            recovery = isinstance(device, StaticDevice)
            factor = "recovery_code" if recovery else "totp"
            record(request, "mfa.verify", user=user, detail={"factor": factor})
            if recovery:
                left = mfa.recovery_codes_left(user)
                messages.warning(
                    request,
                    f"You used a recovery code; {left} left. "
                    "Generate new ones on your account page if you are running low.",
                )
            return redirect(_next_url(request))
        wait = mfa.throttled_seconds(user, code)
        record(request, "mfa.verify", "failure", user=user, detail={"throttled_for": wait})
        error = "That code did not match."
        if wait:
            error += f" Please wait {wait} seconds before the next try."
    return render(
        request,
        "accounts/mfa_verify.html",
        {"form": form, "error": error, "next": _next_url(request)},
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: QR code and secret, confirm with a code, recovery codes.

    A user who already has a device must verify with it first: otherwise a stolen password
    would be enough to replace the victim's phone with the thief's.
    """
    user = request.user
    if mfa.has_confirmed_device(user) and not mfa.is_verified(user):
        return redirect(f"{reverse('mfa-verify')}?{request.GET.urlencode()}")
    device = mfa.pending_totp_device(user)
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        codes = mfa.confirm_enrolment(user, device, form.cleaned_data["code"])
        if codes is not None:
            device.refresh_from_db()
            mfa.login_device(request, device)
            record(request, "mfa.enrol", user=user, obj=device)
            # Shown once, in this response, and never stored anywhere but as the tokens.
            return render(
                request,
                "accounts/recovery_codes.html",
                {"codes": codes, "next": _next_url(request), "first_time": True},
            )
        record(request, "mfa.enrol", "failure", user=user, obj=device)
        error = "That code did not match. Check the phone's clock and try the newest code."
    return render(
        request,
        "accounts/mfa_enrol.html",
        {
            "form": form,
            "error": error,
            "qr_svg": mfa.qr_svg(device),
            "secret": mfa.secret_text(device),
            "next": _next_url(request),
            "required": mfa.requires_mfa(user),
        },
    )


@never_cache
@login_required
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """Replace the recovery codes (the old ones stop working), shown once."""
    if not mfa.has_confirmed_device(request.user):
        return redirect("mfa-enrol")
    codes = mfa.new_recovery_codes(request.user)
    record(request, "mfa.recovery_codes", user=request.user, detail={"count": len(codes)})
    return render(
        request,
        "accounts/recovery_codes.html",
        {"codes": codes, "next": reverse("account"), "first_time": False},
    )


def _account_page(
    request: HttpRequest, form: TokenForm, new_token: str = "", status: int = 200
) -> HttpResponse:
    user = request.user
    return render(
        request,
        "accounts/account.html",
        {
            "tokens": ApiToken.objects.filter(user=user),
            "form": form,
            "new_token": new_token,
            "mfa_enrolled": mfa.has_confirmed_device(user),
            "mfa_required": mfa.requires_mfa(user),
            "recovery_left": mfa.recovery_codes_left(user),
        },
        status=status,
    )


@never_cache
@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    """The user's settings: MFA status and API tokens."""
    return _account_page(request, TokenForm())


@never_cache
@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    """Issue a token and show it once, in this response (never-cache: not kept by proxies)."""
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _account_page(request, form, status=400)
    row, token = issue_token(request.user, form.cleaned_data["name"], form.cleaned_data["days"])
    record(request, "token.create", user=request.user, obj=row, detail={"token": row.prefix})
    return _account_page(request, TokenForm(), new_token=token)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's own tokens (someone else's is a 404: ids leak nothing)."""
    row = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if revoke_token(row):
        record(request, "token.revoke", user=request.user, obj=row, detail={"token": row.prefix})
        messages.success(request, f"Token “{row.name}” revoked.")
    return redirect("account")


def _session_state(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"authenticated": False, "remaining": 0})
    last = request.session.get(LAST_ACTIVITY_KEY)
    idle = int(time.time()) - last if isinstance(last, int) else 0
    remaining = max(0, settings.SESSION_IDLE_TIMEOUT - idle)
    return JsonResponse({"authenticated": True, "remaining": remaining})


@never_cache
@require_GET
def session_status(request: HttpRequest) -> JsonResponse:
    """Seconds left before the idle sign-out, for the page's warning. Not itself activity
    (IdleTimeoutMiddleware skips it), so an open tab does not keep a session alive."""
    return _session_state(request)


@never_cache
@require_POST
def session_keepalive(request: HttpRequest) -> JsonResponse:
    """ "Stay signed in" from the warning: a deliberate click counts as activity."""
    if request.user.is_authenticated:
        request.session[LAST_ACTIVITY_KEY] = int(time.time())
    return _session_state(request)


@never_cache
@require_GET
@token_or_session_required
def whoami(request: HttpRequest) -> JsonResponse:
    """Who the API thinks you are: how a script checks its token before real work."""
    via = "token" if getattr(request, "api_token", None) is not None else "session"
    return JsonResponse({"username": request.user.get_username(), "auth": via})


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's page, with the current password checked as a sign-in (CheckedPasswordChangeForm)
    and the change itself audited."""

    form_class = CheckedPasswordChangeForm
    success_url = reverse_lazy("password-change-done")

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form: CheckedPasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        record(self.request, "password.change", user=form.user)
        return response
