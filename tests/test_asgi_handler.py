"""readingroom/asgi_handler.py: the whole middleware chain and the view run in one call on the
request's thread; threads are reused across requests but never shared by two requests at once;
and the real application still serves the real middleware stack through it."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import override_settings
from django.urls import path

from readingroom.asgi_handler import IDLE_THREADS, SyncChainASGIHandler
from tests.asgi_client import asgi_request


class RecordThreads:
    """Notes which thread ran the middleware's call and its process_view."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        request.middleware_thread = threading.get_ident()
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view, args, kwargs) -> None:
        request.process_view_thread = threading.get_ident()


def where(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "middleware": request.middleware_thread,
            "process_view": request.process_view_thread,
            "view": threading.get_ident(),
        }
    )


meeting = threading.Barrier(2, timeout=10)


def together(request: HttpRequest) -> JsonResponse:
    """Returns only once a second request is inside this view too."""
    meeting.wait()
    return JsonResponse({"view": threading.get_ident()})


urlpatterns = [path("where", where), path("together", together)]

MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.RecordThreads"]


@pytest.fixture
def handler(transactional_db):
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE):
        yield SyncChainASGIHandler()


def get(handler, path: str) -> dict:
    answer = async_to_sync(asgi_request)(handler, path, {})
    assert answer.status == 200, answer.body
    return json.loads(answer.body)


def test_middleware_process_view_and_view_share_one_thread_off_the_loop(handler):
    loop_thread = threading.get_ident()
    seen = get(handler, "/where")
    assert seen["middleware"] == seen["process_view"] == seen["view"]
    assert seen["view"] != loop_thread


def test_consecutive_requests_reuse_the_thread(handler):
    threads = {get(handler, "/where")["view"] for _ in range(5)}
    assert len(threads) == 1


def test_concurrent_requests_run_side_by_side_on_their_own_threads(handler):
    meeting.reset()

    async def both():
        return await asyncio.gather(
            asgi_request(handler, "/together", {}), asgi_request(handler, "/together", {})
        )

    answers = async_to_sync(both)()
    # Served one after the other, the first would wait at the barrier for ever (500).
    assert [a.status for a in answers] == [200, 200]
    assert len({json.loads(a.body)["view"] for a in answers}) == 2
    # Both threads went back to the idle list for the next requests.
    assert len(handler._idle) == 2 <= IDLE_THREADS


def test_the_real_stack_answers_through_it(transactional_db):
    """The application serve runs: the project's middleware (security headers, the JSON 401 of
    the API) still applies."""
    from readingroom.asgi import application

    answer = async_to_sync(asgi_request)(application, "/dicomweb/studies", {})
    assert answer.status == 401
    assert answer.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in answer.headers
