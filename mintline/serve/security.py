"""Limits that make the detector a poor oracle and the server hard to stall.

A detector that answers freely is a training signal: watermark-stealing attacks (Jovanović et
al., ICML 2024) learn the green lists from many detection answers. Each client (its address)
therefore gets a token bucket (a steady rate with a small burst) and a query budget per
period; both answer 429 with Retry-After. Request bodies are limited in size (413, before the
body is read when Content-Length says so, while reading when it does not) and in time (408),
so a slow or huge upload cannot hold a worker. Starlette has no per-route body limit or
upload deadline, hence this small ASGI middleware.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

MAX_TRACKED_CLIENTS = 100_000  # least recently seen clients are forgotten beyond this


class ClientLimits:
    """Per-client token bucket plus query budget; `check` returns None or the seconds to wait."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        budget: int,
        budget_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rate = per_minute / 60.0
        self.burst = burst
        self.budget = budget
        self.budget_seconds = budget_seconds
        self.clock = clock
        # client -> [tokens, last refill, period start, queries in period]
        self.clients: OrderedDict[str, list[float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return bool(self.rate or self.budget)

    def check(self, client: str, counts_as_query: bool) -> float | None:
        if not self.enabled:
            return None
        now = self.clock()
        state = self.clients.pop(client, None) or [float(self.burst), now, now, 0.0]
        self.clients[client] = state  # most recently seen last
        while len(self.clients) > MAX_TRACKED_CLIENTS:
            self.clients.popitem(last=False)
        tokens, last, period_start, queries = state
        if self.rate:
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            state[0], state[1] = tokens, now
            if tokens < 1.0:
                return (1.0 - tokens) / self.rate
        if self.budget and counts_as_query:
            if now - period_start >= self.budget_seconds:
                period_start, queries = now, 0.0
                state[2], state[3] = now, 0.0
            if queries >= self.budget:
                return period_start + self.budget_seconds - now
            state[3] = queries + 1
        if self.rate:
            state[0] = tokens - 1.0
        return None

    def enforce(self, client: str, counts_as_query: bool) -> None:
        wait = self.check(client, counts_as_query)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            what = "rate limit" if self.rate and self.clients[client][0] < 1.0 else "query budget"
            raise HTTPException(
                429, f"{what} reached for this client; retry after {seconds} s", headers={"Retry-After": str(seconds)}
            )


class BodyLimitMiddleware:
    """Per-path request body limits (413) and a deadline for receiving the whole body (408)."""

    def __init__(self, app, limits: dict[str, int], default_limit: int, upload_timeout: float):
        self.app = app
        self.limits = limits
        self.default_limit = default_limit
        self.upload_timeout = upload_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default_limit)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await JSONResponse({"error": "bad Content-Length header"}, 400)(scope, receive, send)
            if size > limit:
                return await too_large(limit)(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + self.upload_timeout
        received, complete = 0, False

        async def limited_receive():
            nonlocal received, complete
            if complete:  # after the body only a disconnect can come: no deadline on waiting for it
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"upload too slow: the body did not arrive within {self.upload_timeout:g} s")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large_message(limit))
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)


def too_large_message(limit: int) -> str:
    return f"request body too large: the limit is {limit:,} bytes"


def too_large(limit: int) -> JSONResponse:
    # the body is not read: the connection is closed after the answer, as HTTP/1.1 allows
    return JSONResponse({"error": too_large_message(limit)}, 413, headers={"Connection": "close"})


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
# Everything the page and the docs use is served from here: no CDN, no third-party request.
DEFAULT_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# FastAPI's Swagger page starts Swagger UI (served from /static/docs) with an inline script.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeadersMiddleware:
    """Adds the headers above, and a deny-all CSP to responses that set none of their own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", DOCS_CSP if scope["path"] == "/docs" else DEFAULT_CSP))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
