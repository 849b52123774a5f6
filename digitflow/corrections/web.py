"""The review page: a batch's doubtful lines (or digits) one at a time, largest doubt
first, each corrected by keyboard and saved the moment Enter is pressed.

``digitflow review`` serves it. The items are those of the page's start; what is saved
is read from the store on each ``/api/items``, so a reload shows every saved answer.

Served on this machine only (the default), it answers only requests addressed to a
loopback name. A site open in the reviewer's browser could otherwise point a name of its
own at 127.0.0.1 (DNS rebinding) and, being then the page's own origin to the browser,
read the items and save answers that the next adapted model would learn.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from digitflow.corrections import items, record
from digitflow.corrections.items import ReviewItem
from digitflow.corrections.page import PAGE
from digitflow.errors import NotFoundError, SourceError
from digitflow.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

SEND = 'send {"digits": "123"} or {"not_digits": true} as application/json'
MAX_BODY = 4096  # an answer is a few dozen bytes
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def item_json(item: ReviewItem, saved: record.Correction | None) -> dict[str, Any]:
    """What the page shows of an item: where it lies, what was read, its saved answer."""
    return {
        "id": item.id, "file": item.file, "page": item.page, "line": item.line,
        "position": item.position, "kind": item.kind, "read": item.read,
        "runner_up": item.runner_up, "doubt": item.doubt,
        "correction": None if saved is None else saved.model_dump(mode="json"),
    }  # fmt: skip


def answer(body: Any) -> str | None:
    """The digits a POST body gives, or None for ``{"not_digits": true}``."""
    if isinstance(body, dict):
        digits, none = body.get("digits"), body.get("not_digits", False)
        if none is True and digits in (None, ""):
            return None
        if none is False and isinstance(digits, str):
            return digits
    raise SourceError(
        f'the body {json.dumps(body)[:80]} says neither: send {{"digits": "123"}} or '
        '{"not_digits": true}'
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def host_name(header: str) -> str:
    """The name in a Host header, without its port: ``[::1]:8000`` gives ``::1``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0] if header.count(":") == 1 else header


class LoopbackOnly:
    """Refuses (403) every request whose Host header is not a loopback name, saying which
    names it answers at. (Starlette's ``TrustedHostMiddleware`` answers only "Invalid host
    header", and its older versions cut ``[::1]:8000`` at the first colon.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(header).lower() not in LOOPBACK:
                refused = _error(403, f"this page answers at 127.0.0.1 or localhost only, "
                                      f"not at {header[:80]!r}")  # fmt: skip
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _save(store: ObjectStore, item: ReviewItem, digits: str | None, by: str) -> dict[str, Any]:
    saved = record.save(store, item, items.crop_pixels(store, item), digits, by=by)
    log.info("%s of batch %s: %s", item.id, item.batch_id, digits if digits else "not digits")
    return saved.model_dump(mode="json")


def create_app(store_uri: str, batch_id: str, by: str, loopback_only: bool = True) -> Starlette:
    """The review page of ``batch_id`` in the store at ``store_uri``, saving as ``by``;
    its items (loaded here, once) are in ``app.state.items``. With ``loopback_only``, it
    answers requests addressed to this machine's loopback names only."""
    store = open_store(store_uri)
    found = items.review_items(store, batch_id)
    by_id = {item.id: item for item in found}
    saving_as = f", saved as {html.escape(by)}" if by else ""
    page = PAGE.replace("{{batch}}", html.escape(batch_id)).replace("{{by}}", saving_as)

    def unknown(item_id: str) -> JSONResponse:
        return _error(404, f"no item {item_id!r} in batch {batch_id!r}: reload the page")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def listing(request: Request) -> Response:
        saved = await run_in_threadpool(record.read_all, store, batch_id)
        answers = {c.item: c for c in saved}
        return JSONResponse([item_json(i, answers.get(i.id)) for i in found])

    async def crop(request: Request) -> Response:
        item = by_id.get(request.path_params["item_id"])
        if item is None:
            return unknown(request.path_params["item_id"])
        try:
            data = await run_in_threadpool(store.read_bytes, item.crop_key)
        except NotFoundError:
            return _error(404, f"the crop {store.uri_of(item.crop_key)} is gone: score again")
        return Response(data, media_type="image/png")

    async def correct(request: Request) -> Response:
        item = by_id.get(request.path_params["item_id"])
        if item is None:
            return unknown(request.path_params["item_id"])
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            # a form on another site can post text/plain here, but not JSON
            return _error(415, f"the body is not JSON: {SEND}")
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            return _error(413, f"an answer is at most {MAX_BODY} bytes, with its length: {SEND}")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _error(413, f"an answer is at most {MAX_BODY} bytes: {SEND}")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, f"the body is not JSON: {SEND}")
        try:
            saved = await run_in_threadpool(_save, store, item, answer(body), by)
        except SourceError as exc:
            return _error(400, str(exc))
        return JSONResponse(saved)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/items", listing),
            Route("/crop/{item_id}", crop),
            Route("/api/corrections/{item_id}", correct, methods=["POST"]),
        ],
        middleware=[Middleware(LoopbackOnly)] if loopback_only else [],
    )
    app.state.items = found
    return app
