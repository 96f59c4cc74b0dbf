"""WebSocket URL routes of the worklist, mounted by readingroom/asgi.py."""

from __future__ import annotations

from django.urls import path

from .consumers import WorklistConsumer

websocket_urlpatterns = [path("ws/worklist/", WorklistConsumer.as_asgi())]
