"""Two plain ASGI middlewares: a request-body size limit (413) and per-route request metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from mtst.serve.errors import error_body
from mtst.serve.metrics import ServeMetrics

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


async def send_json_error(send: Callable, status: int, message: str, error_type: str) -> None:
    body = json.dumps(error_body(message, error_type)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Read the whole body first, at most ``max_bytes`` of it, then replay it to the app; 413 past the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = (
            f"the request body is larger than the limit of {self.max_bytes} bytes; "
            "send fewer or shorter texts per request (or start the server with a larger --max-body-bytes)."
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await send_json_error(send, 413, too_big, "payload_too_large")
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_json_error(send, 413, too_big, "payload_too_large")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


class RequestMetrics:
    """Count every response by route and status, and time it; unknown paths share the route label "other"."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, routes: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else ("/static" if path.startswith("/static/") else "other")
        start, status = time.perf_counter(), 500

        async def send_and_note(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe_request(route, status, time.perf_counter() - start)
