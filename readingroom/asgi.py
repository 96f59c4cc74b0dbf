"""ASGI entry point: HTTP through Django (its middleware chain run synchronously on reused
threads, asgi_handler.py; rendered frames of a study already granted through the fast path in
front of it); WebSockets through Channels (session auth, same origin only)."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readingroom.settings")

import django  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import get_resolver  # noqa: E402

django.setup(set_prefix=False)

from readingroom.asgi_handler import SyncChainASGIHandler  # noqa: E402

_http = SyncChainASGIHandler()
if settings.SERVE_STATIC:
    # Embedded runs (and tests' server processes) have no separate static file server.
    _http = ASGIStaticFilesHandler(_http)

from archive.dicomweb.fastpath import RenderedFastPath  # noqa: E402

# Rendered frames of a study the asker was just allowed to see skip Django (fastpath.py).
_http = rendered_fast_path = RenderedFastPath(_http)

from worklist.routing_ws import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": _http,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Python's full collections scanned every object start-up made (Django, pydicom, numpy, the
# views): a ~90 ms pause every ~20 searches, which made a QIDO search's p95 95 ms against a
# median of 17 ms (bench/qido.py, PostgreSQL, 100,000 studies). Import the views now and move
# all that to the permanent generation, which collections skip; it lives as long as the
# process anyway.
get_resolver().url_patterns  # noqa: B018  (imports every view module)
gc.collect()
gc.freeze()
