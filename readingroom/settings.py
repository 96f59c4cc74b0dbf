"""ReadingRoom settings: everything comes from the environment, with safe embedded defaults.

Embedded defaults (no variables set) give SQLite in WAL mode under the data folder, the
in-memory channel layer and eager Celery: one process runs everything. Setting REDIS_URL
switches to channels-redis and a real Celery broker; DATABASE_URL selects PostgreSQL.
A bad value fails at start-up rather than at the first request.
"""

from __future__ import annotations

import os
import secrets
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
    "channels",
    "readingroom",
    "accounts",
    "identity",
    "archive",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
    }
    _db["TEST"] = {"NAME": str(DATA_DIR / "test-readingroom.sqlite3")}
else:
    _db.setdefault("TEST", {})["NAME"] = env("TEST_DATABASE_NAME", "test_readingroom")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channels and celery --------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "archive.sweep_arrivals": {"task": "archive.sweep_arrivals", "schedule": 10.0},
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
# process uses one core at most); 1 serves in the command's own process.
DICOM_WORKERS = envint("DICOM_WORKERS", min(4, os.cpu_count() or 1), 1, 64)
DICOM_MAX_PDU = envint("DICOM_MAX_PDU", 131072, 0, 2**32 - 1)
DICOM_NETWORK_TIMEOUT = envint("DICOM_NETWORK_TIMEOUT", 60, 1, 3600)

# --- archive --------------------------------------------------------------------------------
STORAGE_DIR = Path(env("READINGROOM_STORAGE_DIR", str(DATA_DIR / "dicom"))).resolve()
RESEND_POLICY = env("READINGROOM_RESEND_POLICY", "version")
if RESEND_POLICY not in ("version", "keep_first", "reject"):
    raise ImproperlyConfigured("READINGROOM_RESEND_POLICY must be version, keep_first or reject")
ARRIVAL_QUIET_SECONDS = envint("READINGROOM_ARRIVAL_QUIET_SECONDS", 60, 1, 86400)
ARRIVAL_REDRIVE_SECONDS = envint("READINGROOM_ARRIVAL_REDRIVE_SECONDS", 120, 1, 86400)

# --- access ---------------------------------------------------------------------------------
# Referring physicians see their patients' studies only once a final report exists, unless set.
REFERRING_SEES_UNREPORTED = envbool("REFERRING_SEES_UNREPORTED", False)

# --- web ------------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"pynetdicom": {"level": env("PYNETDICOM_LOG_LEVEL", "WARNING")}},
}
