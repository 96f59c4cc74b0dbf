"""One GET through an ASGI application in-process (asgiref's ApplicationCommunicator), for
tests that must drive the real ASGI stack rather than Django's test client."""

from __future__ import annotations

from asgiref.testing import ApplicationCommunicator


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


async def asgi_request(
    application, path: str, headers: dict[str, str], host: str = "127.0.0.1"
) -> Answer:
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", host.encode())]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    app = ApplicationCommunicator(application, scope)
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(timeout=30)
    body = b""
    while True:
        message = await app.receive_output(timeout=30)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await app.wait(timeout=5)
    heads = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], heads, body)
