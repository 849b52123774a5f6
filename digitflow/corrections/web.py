"""The review page: a batch's doubtful lines (or digits) one at a time, largest doubt
first, each corrected by keyboard and saved the moment Enter is pressed.

``digitflow review`` serves it. The items are those of the page's start; what is saved
is read from the store on each ``/api/items``, so a reload shows every saved answer.

It answers only requests addressed to this machine: an IP address, ``localhost``, and,
where it listens on more than loopback, the machine's own names and the one it was given.
A site open in the reviewer's browser could otherwise point a name of its own at the page
(DNS rebinding) and, being then the page's own origin to the browser, read the items and
save answers that the next adapted model would learn. No other site may frame it either
(a page that framed it could turn a reviewer's keystrokes into answers).
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import socket
from datetime import datetime
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
from digitflow.errors import NotFoundError, PreconditionFailed, SourceError, StoreError
from digitflow.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

SEND = 'send {"digits": "123"} or {"not_digits": true} as application/json'
MAX_BODY = 4096  # an answer is a few dozen bytes
LOCAL_NAMES = frozenset({"localhost"})
# On every answer: no other site may frame the page, nor a browser guess a crop's type.
GUARD_HEADERS = [
    (b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
]  # fmt: skip


def is_loopback(address: str) -> bool:
    """Whether a listening address (as the socket gives it) reaches this machine alone."""
    try:
        return ipaddress.ip_address(address.partition("%")[0]).is_loopback
    except ValueError:
        return address.lower() == "localhost"


def names_for(host: str, address: str) -> frozenset[str]:
    """The host names the page answers at, listening on ``address`` (asked for as
    ``host``): ``localhost`` where that reaches this machine alone; else this machine's
    names and ``host`` too. (An IP address is always answered at: no other site's page
    can be addressed by it.)"""
    if is_loopback(address):
        return LOCAL_NAMES
    own = {n.lower() for n in (host, socket.gethostname(), socket.getfqdn())}
    return LOCAL_NAMES | {n for n in own if n and not _is_address(n)}


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


def unique(found: list[ReviewItem]) -> list[ReviewItem]:
    """The items whose ids no other item shares. Two files whose names differ only in
    characters an object key cannot hold may share one (their crops too): an answer given
    to one would be saved for the other, so neither is shown, and a warning names them
    (correct them through ``digitflow review export``, which names files in full)."""
    files: dict[str, set[str]] = {}
    for item in found:
        files.setdefault(item.id, set()).add(item.file)
    for item_id, names in files.items():
        if len(names) > 1:
            log.warning("%s are left off the review page: their items share the id %s (rename "
                        "one and score again, or correct them in a CSV: digitflow review "
                        "export)", " and ".join(sorted(names)), item_id)  # fmt: skip
    return [item for item in found if len(files[item.id]) == 1]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def host_name(header: str) -> str:
    """The name in a Host header, without its port: ``[::1]:8000`` gives ``::1``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0] if header.count(":") == 1 else header


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """Refuses (403) every request whose Host header names neither an IP address nor one
    of ``names``, saying which names it answers at; adds ``GUARD_HEADERS`` to every answer.
    (Starlette's ``TrustedHostMiddleware`` answers only "Invalid host header", and its
    older versions cut ``[::1]:8000`` at the first colon.)"""

    def __init__(self, app: ASGIApp, names: frozenset[str] = LOCAL_NAMES) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *GUARD_HEADERS]}
            await send(message)

        header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        name = host_name(header).lower()
        if not _is_address(name) and name not in self.names:
            shown = " or ".join(sorted(self.names))
            refused = _error(403, f"this page answers at an IP address or {shown} only, not "
                                  f"at {header[:80]!r}")  # fmt: skip
            await refused(scope, receive, guarded)
            return
        await self.app(scope, receive, guarded)


class Stale(Exception):
    """An answer given over one that the page did not show (another tab saved it since)."""


def _seen(body: Any) -> tuple[bool, datetime | None]:
    """Whether the body says which saved answer its page showed, and when that was saved
    (None: none)."""
    if not isinstance(body, dict) or "seen" not in body:
        return False, None
    seen = body["seen"]
    try:
        return True, None if seen is None else datetime.fromisoformat(seen)
    except (TypeError, ValueError) as exc:
        raise SourceError(f"seen: {str(seen)[:40]!r} is no time an answer was saved") from exc


def _save(
    store: ObjectStore, item: ReviewItem, digits: str | None, by: str, seen: tuple[bool, Any]
) -> dict[str, Any]:  # fmt: skip
    asked, shown = seen
    replacing: str | None = record.ANY
    if asked:  # saved over the answer the page showed, and no other
        now, replacing = record.saved(store, item.batch_id, item.id)
        if (now.at if now else None) != shown:
            raise Stale(_stale(item, now.at if now else None))
    try:
        saved = record.save(store, item, items.crop_pixels(store, item), digits, by, replacing)
    except PreconditionFailed as exc:  # another tab saved it between the look and the save
        raise Stale(_stale(item, None, just_now=True)) from exc
    log.info("%s of batch %s: %s", item.id, item.batch_id, digits if digits else "not digits")
    return saved.model_dump(mode="json")


def _stale(item: ReviewItem, now: datetime | None, just_now: bool = False) -> str:
    when = ("just now" if just_now else f"at {now.isoformat()}" if now
            else "at no time: the answer was removed")  # fmt: skip
    return (
        f"{item.file} line {item.line} was answered elsewhere since this page showed it "
        f"({when}): reload the page to see it, then answer again"
    )


def create_app(
    store_uri: str, batch_id: str, by: str, names: frozenset[str] = LOCAL_NAMES
) -> Starlette:  # fmt: skip
    """The review page of ``batch_id`` in the store at ``store_uri``, saving as ``by``;
    its items (loaded here, once) are in ``app.state.items``. It answers requests
    addressed to an IP address or to one of ``names`` (``names_for``)."""
    store = open_store(store_uri)
    found = unique(items.review_items(store, batch_id))
    by_id = {item.id: item for item in found}
    saving_as = f", saved as {html.escape(by)}" if by else ""
    page = PAGE.replace("{{batch}}", html.escape(batch_id)).replace("{{by}}", saving_as)

    def unknown(item_id: str) -> JSONResponse:
        return _error(404, f"no item {item_id!r} in batch {batch_id!r}: reload the page")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def listing(request: Request) -> Response:
        try:
            saved = await run_in_threadpool(record.read_all, store, batch_id)
        except SourceError as exc:  # a file under corrections/ that is no correction
            return _error(500, str(exc))
        except StoreError as exc:
            return _error(503, str(exc))
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
        except StoreError as exc:
            return _error(503, str(exc))
        return Response(data, media_type="image/png")

    async def correct(request: Request) -> Response:
        item = by_id.get(request.path_params["item_id"])
        if item is None:
            return unknown(request.path_params["item_id"])
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
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
        except (ValueError, RecursionError):  # RecursionError: nested a few thousand deep
            return _error(400, f"the body is not JSON: {SEND}")
        try:
            saved = await run_in_threadpool(_save, store, item, answer(body), by, _seen(body))
        except SourceError as exc:
            return _error(400, str(exc))
        except Stale as exc:
            return _error(409, str(exc))
        except StoreError as exc:  # nothing is half-saved: the answer is written last
            return _error(503, f"{exc}: not saved, try again")
        return JSONResponse(saved)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/items", listing),
            Route("/crop/{item_id}", crop),
            Route("/api/corrections/{item_id}", correct, methods=["POST"]),
        ],
        middleware=[Middleware(Guard, names=names)],
    )
    app.state.items = found
    return app
