"""The FastAPI application: page, JSON API, local OpenAPI docs, limits.

Every error is one line of JSON, `{"error": "..."}`, with a 4xx status for anything the
client sent. Detection and verification run in a bounded pool of worker threads
(`anyio.to_thread`), so the event loop keeps answering while a long text or a large bundle
is being checked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mintline import __version__
from mintline.serve.answers import detection_answer, verification_answer
from mintline.serve.page import page_csp, render_page
from mintline.serve.published import BundleChecker, BundleRejected, TextChecker
from mintline.serve.security import BodyLimitMiddleware, ClientLimits, SecurityHeadersMiddleware

DETECT_PATH, VERIFY_PATH = "/api/v1/detect", "/api/v1/verify"
SMALL_BODY_LIMIT = 64 << 10  # every other route: nothing to upload
CHUNK = 1 << 20

TEXT_BODY = {
    "required": True,
    "content": {
        "text/plain": {"schema": {"type": "string"}, "example": "The text to check..."},
        "application/json": {
            "schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}, "text": {"type": "string"}},
            }
        },
    },
}
TAR_BODY = {
    "required": True,
    "content": {
        "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}


def one_line(message) -> str:
    text = str(message).strip() or "error"
    return " ".join(text.split())[:500]


def create_app(settings, detection) -> FastAPI:
    """The service for ServeArguments `settings` and DetectionConfig `detection`; loads the keys now."""
    texts = TextChecker(settings.keys, settings.tokenizer, detection)
    bundles = BundleChecker(settings.pubkeys)
    limits = ClientLimits(settings.rate_limit, settings.burst, settings.query_budget, settings.budget_hours * 3600)
    threads = settings.threads or max(2, os.cpu_count() or 2)
    workers = anyio.CapacityLimiter(threads)
    # a bundle upload takes disk space until it is checked: no more at once than there are workers
    bundle_slots = anyio.Semaphore(threads)
    full = settings.detail == "full"

    app = FastAPIOffline(
        title="mintline verification service",
        version=__version__,
        description="Watermark verdicts for texts and signature verdicts for release bundles, with the publisher's "
        "keys. Answers are coarse unless the service runs with --detail full; per-client rate limits apply.",
        docs_url="/docs",
        redoc_url=None,
        static_url="/static/docs",
    )
    app.add_middleware(
        BodyLimitMiddleware,
        limits={DETECT_PATH: settings.max_text_bytes, VERIFY_PATH: settings.max_bundle_bytes},
        default_limit=SMALL_BODY_LIMIT,
        upload_timeout=settings.upload_timeout,
    )
    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": one_line(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return JSONResponse({"error": one_line(f"invalid request: {first.get('msg', 'bad input')}")}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return JSONResponse({"error": "internal error"}, 500)

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = render_page(
            nonce=nonce,
            watermark_keys=texts.public_keys(),
            signers=bundles.public_keys(),
            settings=settings,
            detection=detection,
        )
        return HTMLResponse(html, headers={"Content-Security-Policy": page_csp(nonce)})

    @app.get("/healthz", summary="Liveness: the keys are loaded and the server answers")
    async def healthz() -> dict:
        return {"status": "ok", "watermark_keys": len(texts.keys), "signers": len(bundles.signers)}

    @app.get("/api/v1/keys", summary="The published watermark key ids and release signer fingerprints")
    async def keys(request: Request) -> dict:
        limits.enforce(client_of(request), counts_as_query=False)
        return {
            "watermark_keys": texts.public_keys(),
            "signers": bundles.public_keys(),
            "detection": {"fpr": detection.fpr, "min_tokens": detection.min_tokens, "window": detection.window},
            "detail": settings.detail,
        }

    @app.post(
        DETECT_PATH,
        summary="Is this text watermarked? Per published key: verdict, p-value (range), tokens scored; marked spans",
        openapi_extra={"requestBody": TEXT_BODY},
    )
    async def detect(request: Request) -> dict:
        limits.enforce(client_of(request), counts_as_query=True)
        text = await text_of(request)
        result = await anyio.to_thread.run_sync(texts.detect, text, limiter=workers)
        return detection_answer(result, detection, full)

    @app.post(
        VERIFY_PATH,
        summary="Is this release bundle (a tar) signed by a published key, with every file intact?",
        openapi_extra={"requestBody": TAR_BODY},
    )
    async def verify(request: Request) -> dict:
        limits.enforce(client_of(request), counts_as_query=True)
        try:
            bundle_slots.acquire_nowait()
        except anyio.WouldBlock:
            raise HTTPException(
                503, "busy verifying other bundles; retry shortly", headers={"Retry-After": "5"}
            ) from None
        scratch = Path(tempfile.mkdtemp(prefix="mintline-serve-"))
        try:
            upload = scratch / "upload.tar"
            await save_upload(request, upload)
            try:
                check = await anyio.to_thread.run_sync(bundles.verify_tar, upload, limiter=workers)
            except BundleRejected as exc:
                raise HTTPException(400, f"not a bundle tar: {exc}") from None
            return verification_answer(check)
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)
            bundle_slots.release()

    return app


async def text_of(request: Request) -> str:
    """The text of a detect request: a text/plain (or any raw) body, JSON {"text"}, or a form's file/text field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=1, max_fields=4)
        item = form.get("file") or form.get("text")
        if item is None:
            raise HTTPException(400, "multipart body needs a 'file' or a 'text' field")
        raw = await item.read() if isinstance(item, UploadFile) else item.encode("utf-8")
    elif kind == "application/json":
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"body is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise HTTPException(400, 'JSON body must be an object with a "text" string')
        raw = data["text"].encode("utf-8", "surrogatepass")
    else:
        raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"text is not UTF-8 (invalid byte at offset {exc.start})") from None
    if not text.strip():
        raise HTTPException(400, "empty text: nothing to detect")
    return text


async def save_upload(request: Request, target: Path) -> None:
    """Write a verify request's tar (raw body, or the multipart 'file' field) to `target`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    size = 0
    with open(target, "wb") as handle:
        if kind == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=2)
            item = form.get("file")
            if not isinstance(item, UploadFile):
                raise HTTPException(400, "multipart body needs a 'file' field holding the bundle tar")
            while chunk := await item.read(CHUNK):
                handle.write(chunk)
                size += len(chunk)
        else:
            async for chunk in request.stream():
                handle.write(chunk)
                size += len(chunk)
    if size == 0:
        raise HTTPException(400, "empty upload: send a bundle tar")
