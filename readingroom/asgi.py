"""ASGI entry point: HTTP through Django; WebSocket routes join here as apps add consumers."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readingroom.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

_http = get_asgi_application()
if settings.EMBEDDED or settings.DEBUG:
    # Embedded runs have no separate static file server.
    _http = ASGIStaticFilesHandler(_http)

application = ProtocolTypeRouter({"http": _http})
