"""ReadingRoom settings: everything comes from the environment, with safe embedded defaults.

Embedded defaults (no variables set) give SQLite in WAL mode under the data folder, the
in-memory channel layer and eager Celery: one process runs everything. Setting REDIS_URL
switches to channels-redis and a real Celery broker; DATABASE_URL selects PostgreSQL.
A bad value fails at start-up rather than at the first request.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def envbool(name: str, default: bool) -> bool:
    raw = env(name)
    if not raw:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def envint(name: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
    raw = env(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


DEBUG = envbool("DEBUG", False)
DATA_DIR = Path(env("READINGROOM_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = env("DATABASE_URL")
REDIS_URL = env("REDIS_URL")
# Embedded: no external services configured; everything runs in one process.
EMBEDDED = not DATABASE_URL and not REDIS_URL


def _secret_key() -> str:
    """SECRET_KEY is required in production; embedded runs keep a generated one in the data dir."""
    key = env("SECRET_KEY")
    if key:
        return key
    if not (DEBUG or EMBEDDED):
        raise ImproperlyConfigured("SECRET_KEY must be set outside DEBUG and embedded defaults")
    path = DATA_DIR / "secret-key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "channels",
    "readingroom",
    "accounts",
    "identity",
    "archive",
    "audit",
    # Before viewer: its study_received receiver opens the case before pre-rendering starts
    # (eager Celery runs pre-rendering inline on embedded defaults).
    "worklist",
    "viewer",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "accounts.middleware.MembershipsReadOnce",  # before anything that asks the policy
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Sign-in enforcement (accounts/middleware.py): in this order, after auth and messages.
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.ApiTokenMiddleware",
    "accounts.middleware.IdleTimeoutMiddleware",
    "accounts.middleware.MFARequiredMiddleware",
    "accounts.middleware.SecurityHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a lock-out into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "readingroom.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.security",
            ],
        },
    },
]
ASGI_APPLICATION = "readingroom.asgi.application"
WSGI_APPLICATION = None

# --- database -------------------------------------------------------------------------------
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "readingroom.sqlite3")}
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # IMMEDIATE: a write transaction takes the lock at BEGIN, so concurrent ingest threads
        # wait (busy timeout) instead of failing on a read-to-write lock upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        # Open connections kept for the next request (readingroom/sqlite_pooled/base.py).
        "pool": envbool("DATABASE_POOL", True),
    }
    _db["ENGINE"] = "readingroom.sqlite_pooled"
    _db["TEST"] = {"NAME": str(DATA_DIR / "test-readingroom.sqlite3")}
else:
    _db.setdefault("TEST", {})["NAME"] = env("TEST_DATABASE_NAME", "test_readingroom")
    # No JIT: its cost model counts a page search's per-row probes as if every row were read
    # (estimates in the millions), so PostgreSQL spent 15-35 ms compiling queries that ran in
    # 2-3 ms (bench/qido.py, 100,000 studies). An explicit jit in the URL's options wins.
    _options = _db.setdefault("OPTIONS", {})
    if "jit" not in _options.get("options", ""):
        _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
    # Under ASGI every request would open its own connection (~9 ms to PostgreSQL): Django's
    # pool (psycopg_pool) hands out open ones instead; CONN_MAX_AGE stays 0, as ASGI needs.
    # Processes that fork close their pool first (readingroom/db_pool.py).
    if envbool("DATABASE_POOL", True):
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": envint("DATABASE_POOL_MAX_SIZE", 10, 1, 1000),
            "timeout": 10,
        }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channels and celery --------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 6+ reads with a 5 s socket timeout by default, the same as the layer's
            # 5 s blocking pop: a busy consumer process then fails with "Timeout reading from
            # Redis" and drops its sockets (seen at 200 clients in bench/worklist_push.py).
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    # In-memory, safe to publish to from the SCP threads (readingroom/channel_layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "readingroom.channel_layers.InProcessChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# How often SQLite's query-planner statistics are refreshed (readingroom/planner_stats.py).
SQLITE_STATISTICS_INTERVAL = 3600.0
CELERY_BEAT_SCHEDULE = {
    "archive.sweep_arrivals": {"task": "archive.sweep_arrivals", "schedule": 10.0},
    "identity.match_pending": {"task": "identity.match_pending", "schedule": 30.0},
    "reports.escalate_critical": {"task": "reports.escalate_critical", "schedule": 60.0},
    "reports.retry_outputs": {"task": "reports.retry_outputs", "schedule": 60.0},
    "worklist.sweep": {"task": "worklist.sweep", "schedule": 30.0},
    # SQLite only (readingroom/planner_stats.py); also sent once when beat starts (celery.py).
    "readingroom.planner_statistics": {
        "task": "readingroom.planner_statistics",
        "schedule": SQLITE_STATISTICS_INTERVAL,
    },
}

# --- network listeners ----------------------------------------------------------------------
HTTP_HOST = env("HTTP_HOST", "127.0.0.1")
HTTP_PORT = envint("HTTP_PORT", 8000, 1, 65535)
DICOM_HOST = env("DICOM_HOST", "127.0.0.1")
DICOM_PORT = envint("DICOM_PORT", 11112, 1, 65535)
DICOM_AE_TITLE = env("DICOM_AE_TITLE", "READINGROOM")
if not 1 <= len(DICOM_AE_TITLE) <= 16 or "\\" in DICOM_AE_TITLE:
    raise ImproperlyConfigured("DICOM_AE_TITLE must be 1-16 characters without backslash")
# Overall limit; with DICOM_WORKERS > 1 each worker process takes an equal share (at least 1).
DICOM_MAX_ASSOCIATIONS = envint("DICOM_MAX_ASSOCIATIONS", 16, 1, 1000)
# Processes `manage.py dicom_server` forks to serve associations on the same port (one Python
# process uses one core at most); 1 serves in the command's own process. 4 even on fewer cores:
# an association waits on fsync and the network about as long as it computes, so on 2 cores
# 4 senders went from 164-168 (2 workers) to 210-213 instances/s (bench/ingest.py, 2026-12-03).
DICOM_WORKERS = envint("DICOM_WORKERS", max(4, min(8, os.cpu_count() or 1)), 1, 64)
DICOM_MAX_PDU = envint("DICOM_MAX_PDU", 131072, 0, 2**32 - 1)
DICOM_NETWORK_TIMEOUT = envint("DICOM_NETWORK_TIMEOUT", 60, 1, 3600)

# --- archive --------------------------------------------------------------------------------
STORAGE_DIR = Path(env("READINGROOM_STORAGE_DIR", str(DATA_DIR / "dicom"))).resolve()
RESEND_POLICY = env("READINGROOM_RESEND_POLICY", "version")
if RESEND_POLICY not in ("version", "keep_first", "reject"):
    raise ImproperlyConfigured("READINGROOM_RESEND_POLICY must be version, keep_first or reject")
ARRIVAL_QUIET_SECONDS = envint("READINGROOM_ARRIVAL_QUIET_SECONDS", 60, 1, 86400)
ARRIVAL_REDRIVE_SECONDS = envint("READINGROOM_ARRIVAL_REDRIVE_SECONDS", 120, 1, 86400)

# --- DICOMweb and rendering -------------------------------------------------------------------
STOW_MAX_BYTES = envint("READINGROOM_STOW_MAX_BYTES", 2 * 1024**3, 1024, 2**40)
# Rendered frames are audited once per user and study in this interval, not once per frame.
IMAGE_AUDIT_INTERVAL_SECONDS = envint("READINGROOM_IMAGE_AUDIT_INTERVAL_SECONDS", 300, 1, 86400)
# How long a web process reuses one access decision for a credential's rendered frames of a
# study (archive/dicomweb/grants.py); 0 sends every frame through the full Django stack.
DICOMWEB_GRANT_SECONDS = envint("DICOMWEB_GRANT_SECONDS", 30, 0, 300)
# Rendered frames: "disk" (default embedded), "redis" (default with REDIS_URL) or "none".
FRAME_CACHE_BACKEND = env("READINGROOM_FRAME_CACHE", "redis" if REDIS_URL else "disk")
FRAME_CACHE_DIR = Path(env("READINGROOM_FRAME_CACHE_DIR", str(DATA_DIR / "frame-cache"))).resolve()
FRAME_CACHE_MAX_BYTES = envint("READINGROOM_FRAME_CACHE_MAX_BYTES", 512 * 1024**2, 0, 2**40)

# Proxies whose X-Forwarded-For the audit trail believes (comma-separated IPs); none by default.
TRUSTED_PROXIES = [p.strip() for p in env("TRUSTED_PROXIES").split(",") if p.strip()]

# --- reports --------------------------------------------------------------------------------
# Unacknowledged critical results escalate (e-mail to the reader and the group's schedulers).
CRITICAL_ESCALATE_MINUTES = envint("READINGROOM_CRITICAL_ESCALATE_MINUTES", 60, 1, 10080)

# --- access ---------------------------------------------------------------------------------
# Referring physicians see their patients' studies only once a final report exists, unless set.
REFERRING_SEES_UNREPORTED = envbool("REFERRING_SEES_UNREPORTED", False)

# --- worklist (worklist/) ------------------------------------------------------------------
# SLA minutes per priority when neither a routing rule nor the agreement's terms say otherwise.
WORKLIST_SLA_MINUTES = {
    "stat": envint("WORKLIST_SLA_STAT_MINUTES", 60, 1, 7 * 24 * 60),
    "urgent": envint("WORKLIST_SLA_URGENT_MINUTES", 240, 1, 30 * 24 * 60),
    "routine": envint("WORKLIST_SLA_ROUTINE_MINUTES", 1440, 1, 90 * 24 * 60),
}
# A reader's lock on a case lapses after this long without activity (heartbeat or action).
WORKLIST_LOCK_TIMEOUT_SECONDS = envint("WORKLIST_LOCK_TIMEOUT_SECONDS", 900, 30, 24 * 3600)
# Schedulers hear about unassigned cases this close to their SLA due time.
WORKLIST_NEAR_BREACH_MINUTES = envint("WORKLIST_NEAR_BREACH_MINUTES", 15, 1, 24 * 60)
# Rows one worklist page shows (most urgent first); the rest are counted, not rendered.
WORKLIST_PAGE_SIZE = envint("WORKLIST_PAGE_SIZE", 200, 10, 5000)
# Links in notification e-mails point here (the e-mails carry no patient data, only a link).
# Unset, they point at where `serve` listens (loopback when it listens on every interface).
_LINK_HOST = "127.0.0.1" if HTTP_HOST in ("0.0.0.0", "::", "") else HTTP_HOST  # noqa: S104 (a comparison, not a bind)
_LINK_HOST = f"[{_LINK_HOST}]" if ":" in _LINK_HOST else _LINK_HOST
SITE_URL = env("SITE_URL", f"http://{_LINK_HOST}:{HTTP_PORT}").rstrip("/")

# --- e-mail -----------------------------------------------------------------------------------
# SMTP when EMAIL_HOST is set; otherwise e-mails are written to the log (console backend).
EMAIL_HOST = env("EMAIL_HOST")
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = envint("EMAIL_PORT", 25, 1, 65535)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 30, 1, 600)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "ReadingRoom <readingroom@localhost>")

# --- web ------------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
# Serve /static/ from the ASGI app (embedded runs have no separate static file server).
SERVE_STATIC = envbool("SERVE_STATIC", EMBEDDED or DEBUG)
LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True
X_FRAME_OPTIONS = "DENY"

# --- sign-in and transport security (accounts/auth.py, mfa.py, tokens.py, middleware.py) -----
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    # Older hashes still verify and are upgraded to Argon2 at the next sign-in.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses locked-out usernames before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5, 1, 1000)
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", 30, 1, 7 * 24 * 60))
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes.W006 wants 'ip_address' too. Counting by username alone cannot be dodged by rotating
# IPs, user agents or cookies; adding the IP would lock out a whole hospital behind one NAT
# (or everyone, behind our own TLS proxy) after a few typos.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.auth.lockout_response"
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "ReadingRoom")
# Admins manage devices (delete one to reset a user's MFA) but never see their secrets.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
SESSION_IDLE_TIMEOUT = envint("SESSION_IDLE_TIMEOUT", 1800, 60, 7 * 24 * 3600)
API_TOKEN_DAYS = envint("API_TOKEN_DAYS", 90, 1, 3650)
API_TOKEN_MAX_DAYS = envint("API_TOKEN_MAX_DAYS", max(365, API_TOKEN_DAYS), API_TOKEN_DAYS, 3650)

# TLS=1: served over HTTPS (directly or behind a proxy that daphne trusts with --proxy-headers):
# redirect plain HTTP, send HSTS, and mark cookies Secure. SECURE_COOKIES defaults to TLS.
TLS = envbool("TLS", False)
SECURE_SSL_REDIRECT = TLS
SECURE_HSTS_SECONDS = envint("HSTS_SECONDS", 31536000, 0, 2 * 31536000) if TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", TLS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Page scripts read the CSRF token from the form field, never from the cookie.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "pynetdicom": {"level": env("PYNETDICOM_LOG_LEVEL", "WARNING")},
        # fpdf2's font subsetting logs every glyph table at INFO for each report PDF.
        "fontTools": {"level": "WARNING"},
    },
}
