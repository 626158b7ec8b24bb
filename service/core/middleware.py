"""The outermost ASGI layer: request ids, body-size limit, access log and request metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming and background tasks keep working and the
body limit applies before FastAPI parses anything. Bodies with a ``Content-Length`` above the
limit are refused at once; chunked bodies are read up to the limit and then replayed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.errors import error_body
from service.core.logging import new_request_id, request_id_var
from service.core.metrics import Metrics

log = logging.getLogger("diva.access")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        body_limits: dict[str, int] | None = None,
    ) -> None:
        """``body_limits`` maps path prefixes to their own limit (dataset uploads are larger)."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_limits = sorted((body_limits or {}).items(), key=lambda item: -len(item[0]))
        self.metrics = metrics

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.body_limits:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = new_request_id(headers.get("x-request-id"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder: dict[str, int] = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            refusal, receive = await self._limit_body(headers, receive, self._limit_for(scope["path"]))
            if refusal is not None:
                await _send_json(send_with_id, *refusal)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status_holder["status"], time.perf_counter() - started)
            request_id_var.reset(token)

    async def _limit_body(
        self, headers: dict[str, str], receive: Receive, limit: int
    ) -> tuple[tuple[int, dict[str, Any]] | None, Receive]:
        """(status, error body) when the body is too large, and the receive to pass on."""
        too_large = (413, error_body("payload_too_large", f"request body larger than {limit} bytes"))
        length = headers.get("content-length")
        if length is not None:
            try:
                return (too_large if int(length) > limit else None), receive
            except ValueError:
                return (400, error_body("invalid_request_error", "malformed Content-Length")), receive
        if "chunked" not in headers.get("transfer-encoding", ""):
            return None, receive
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                break
            body = event.get("body", b"")
            size += len(body)
            if size > limit:
                return too_large, receive
            chunks.append(body)
            if not event.get("more_body", False):
                break
        buffered = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": buffered, "more_body": False}
            return await receive()

        return None, replay

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        model = scope.get("state", {}).get("model", "") or ""
        self.metrics.requests.labels(scope["method"], route, str(status), model).inc()
        self.metrics.latency.labels(route, model).observe(seconds)
        if route not in ("/metrics", "/healthz"):
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "model": model,
                    "ms": round(seconds * 1000, 2),
                },
            )


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
