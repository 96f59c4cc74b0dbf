"""The fast path for WADO-RS `rendered` frames of a study the asker was just allowed to see.

An ASGI wrapper in front of Django (readingroom/asgi.py). For `GET .../instances/{uid}/rendered`
and `.../frames/{n}/rendered` it answers by itself only when all of these hold:

- the credential (bearer token, else session cookie) holds a live grant for the study in the
  path (`grants.py`: made by a full Django request that passed sign-in, MFA, the access policy
  and the image audit, moments ago);
- the rendering parameters parse (the same `params_from_request` as the view);
- the instance exists in that study and series, the frame is in range, and it renders (the
  same `viewer.services.render_frame`, cache included, as the view).

Anything else (no grant, a bad parameter, an unknown instance, a frame that cannot be decoded,
a database hiccup) goes to Django unchanged, which gives the standard answer (401, 400, 404,
406, 422) and, when it succeeds, renews the grant. So the fast path can only ever answer 200
with what the view would have sent, with the headers the view's middleware put on the last
such response.

Database reads and rendering run on this module's own threads, never on the event loop; each
thread keeps its database connection (reopened after an error), which is most of the saving.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import QueryDict
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from readingroom.compiled_query import CompiledQuery

from . import grants as grant_store

logger = logging.getLogger(__name__)

_UID = r"[0-9][0-9.]{0,63}"
RENDERED_PATH = re.compile(
    rf"^/dicomweb/studies/({_UID})/series/({_UID})/instances/({_UID})"
    r"(?:/frames/([1-9][0-9]{0,8}))?/rendered$"
)
# Learnt headers never replayed: they belong to one response.
_OWN_HEADERS = {b"content-type", b"content-length", b"set-cookie", b"date", b"server"}


class RenderedFastPath:
    def __init__(self, app, threads: int = 2) -> None:
        self.app = app
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="rendered-fast")

    def close_connections(self, timeout: float = 10.0) -> None:
        """Close the database connection each of this path's threads keeps open (tests, before
        the test database is dropped; PostgreSQL refuses to drop a database in use).

        One task per thread: each closes its own connection (Django connections belong to
        their thread) and waits at a barrier, so no thread can take two of the tasks.
        """
        barrier = threading.Barrier(self._threads)

        def close() -> None:
            connection.close()
            barrier.wait(timeout)

        for future in [self._pool.submit(close) for _ in range(self._threads)]:
            future.result(timeout)

    async def __call__(self, scope, receive, send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "GET":
            path, root = scope["path"], scope.get("root_path", "")
            match = RENDERED_PATH.match(path[len(root) :] if path.startswith(root) else path)
        if match is None or settings.DICOMWEB_GRANT_SECONDS <= 0:
            await self.app(scope, receive, send)
            return
        if await self._serve(scope, match, send):
            return
        await self.app(scope, receive, _learning(send))

    async def _serve(self, scope, match: re.Match, send) -> bool:
        store = grant_store.grants
        template = store.headers()
        if template is None:
            return False
        headers = _headers(scope)
        if not _as_django_would_accept(scope, headers):
            return False
        cookies = parse_cookie(headers.get(b"cookie", b"").decode("latin-1"))
        who = grant_store.credential(
            headers.get(b"authorization", b"").decode("latin-1") or None,
            cookies.get(settings.SESSION_COOKIE_NAME),
        )
        study_uid, series_uid, sop_uid, frame = match.groups()
        if who is None or not store.allows(who, study_uid):
            return False
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(
            self._pool,
            _render,
            study_uid,
            series_uid,
            sop_uid,
            int(frame or 1),
            scope.get("query_string", b"").decode("latin-1"),
            headers.get(b"accept", b"").decode("latin-1"),
        )
        if image is None:
            return False
        content, media_type, after = image
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *template,
                    (b"content-type", media_type.encode("ascii")),
                    (b"content-length", str(len(content)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
        if after:  # the frame cache write, once the reader has the picture
            loop.run_in_executor(self._pool, _run_all, after)
        return True


def _as_django_would_accept(scope, headers: dict[bytes, bytes]) -> bool:
    """The request-level checks Django's middleware makes before any view: an allowed Host
    (ALLOWED_HOSTS) and, with SECURE_SSL_REDIRECT, HTTPS."""
    if settings.SECURE_SSL_REDIRECT and scope.get("scheme") != "https":
        return False
    host, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


def _headers(scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _learning(send):
    """Wrap `send` to learn the headers of Django's successful rendered responses."""

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start" and message.get("status") == 200:
            grant_store.grants.remember_headers(
                tuple(
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in _OWN_HEADERS
                )
            )
        await send(message)

    return wrapped


def _run_all(jobs: list) -> None:
    for job in jobs:
        job()


def _render(
    study_uid: str, series_uid: str, sop_uid: str, frame: int, query: str, accept: str
) -> tuple[bytes, str, list] | None:
    """The view's rendering, without the view; None for anything the view should answer."""
    from viewer import services as viewer

    from .query import QueryError
    from .render_params import params_from_request
    from .wado import NotAcceptable

    try:
        params = params_from_request(QueryDict(query), accept)
    except (QueryError, NotAcceptable):
        return None
    try:
        instance = _instance(study_uid, series_uid, sop_uid)
        if instance is None:
            return None
        after: list = []
        image = viewer.render_frame(instance, frame, params, later=after.append)
    except (viewer.FrameOutOfRange, viewer.RenderError):
        return None
    except DatabaseError:
        logger.warning("rendered fast path: database error, handing over to Django", exc_info=True)
        connection.close()
        return None
    except Exception:  # whatever it is, the view meets it too and answers it properly
        logger.exception("rendered fast path failed, handing over to Django")
        return None
    return image.content, image.media_type, after


# What render_frame reads of an instance; any other field loads on access, as deferred.
_INSTANCE_FIELDS = ("id", "sop_instance_uid", "number_of_frames", "sha256", "storage_key")


def _build_instance_query(sop_uid: str, series_uid: str, study_uid: str):
    from archive.models import Instance

    return Instance.objects.filter(
        sop_instance_uid=sop_uid,
        series__series_instance_uid=series_uid,
        series__study__study_instance_uid=study_uid,
    ).values_list(*_INSTANCE_FIELDS)


# Compiled once: compiling it cost ~1.1 ms of a warm frame's 1.7 ms in the server.
_INSTANCE_QUERY = CompiledQuery(_build_instance_query, 3)


def _instance(study_uid: str, series_uid: str, sop_uid: str):
    """The instance with that UID in that series of that study (UIDs are unique), or None."""
    from archive.models import Instance

    rows = _INSTANCE_QUERY.rows(sop_uid, series_uid, study_uid, using=connection.alias)
    return Instance.from_db(connection.alias, _INSTANCE_FIELDS, rows[0]) if rows else None
