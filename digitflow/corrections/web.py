"""The review page: a batch's doubtful lines (or digits) one at a time, largest doubt
first, each corrected by keyboard and saved the moment Enter is pressed.

``digitflow review`` serves it. The items are those of the page's start; what is saved
is read from the store on each ``/api/items``, so a reload shows every saved answer.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from digitflow.corrections import items, record
from digitflow.corrections.items import ReviewItem
from digitflow.errors import NotFoundError, SourceError
from digitflow.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

SEND = 'send {"digits": "123"} or {"not_digits": true} as application/json'
MAX_BODY = 4096  # an answer is a few dozen bytes


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


def _save(store: ObjectStore, item: ReviewItem, digits: str | None, by: str) -> dict[str, Any]:
    saved = record.save(store, item, items.crop_pixels(store, item), digits, by=by)
    log.info("%s of batch %s: %s", item.id, item.batch_id, digits if digits else "not digits")
    return saved.model_dump(mode="json")


def create_app(store_uri: str, batch_id: str, by: str) -> Starlette:
    """The review page of ``batch_id`` in the store at ``store_uri``, saving as ``by``;
    its items (loaded here, once) are in ``app.state.items``."""
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
        ]
    )
    app.state.items = found
    return app


# One page, with nothing to fetch but its own API: it works offline.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Review {{batch}} · digitflow</title>
<style>
body{font:16px system-ui,sans-serif;margin:0;background:#f5f5f2;color:#222}
main{max-width:60rem;margin:0 auto;padding:1rem 1.5rem}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem}
h1{font-size:1.3rem} #count{font-size:1.2rem;font-weight:600}
#strip{display:flex;flex-wrap:wrap;gap:3px;list-style:none;padding:0;margin:0 0 1rem}
#strip li{width:.8rem;height:.8rem;background:#ccc;border-radius:2px}
#strip li.done{background:#2e7d4f} #strip li.now{outline:2px solid #222;outline-offset:1px}
#crop{display:block;max-width:100%;min-height:3rem;background:#fff;border:1px solid #bbb}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:1rem 0} dt{color:#666}
dd{margin:0} .digits{font:1.3rem ui-monospace,monospace} #saved.yes{color:#2e7d4f;font-weight:600}
input{font:2rem ui-monospace,monospace;width:100%;box-sizing:border-box;padding:.4rem}
#msg{min-height:1.5em;color:#b00020} #msg.ok{color:#2e7d4f}
#done{background:#e3f1e8;border:1px solid #2e7d4f;padding:.6rem 1rem;font-weight:600}
kbd{border:1px solid #999;border-bottom-width:2px;border-radius:3px;padding:0 .3rem;background:#fff}
.keys{color:#444;line-height:1.9}
</style></head><body><main>
<header><h1>Review of batch {{batch}}{{by}}</h1><span id="count">loading…</span></header>
<ol id="strip" aria-label="items, corrected ones green"></ol>
<p id="done" hidden>All done: every item of this batch has a saved answer.
Ctrl+C in the terminal stops the page.</p>
<section id="item">
<img id="crop" alt="the crop to review">
<dl><dt>Where</dt><dd id="where"></dd>
<dt>Read</dt><dd id="read" class="digits"></dd>
<dt>Runner-up</dt><dd id="runner" class="digits"></dd>
<dt>Doubt</dt><dd id="doubt"></dd>
<dt>Saved</dt><dd id="saved"></dd></dl>
<input id="digits" autofocus autocomplete="off" inputmode="numeric" spellcheck="false"
 aria-label="the right digits" placeholder="type the right digits">
</section>
<p id="msg" role="status"></p>
<p class="keys">Type the digits, then <kbd>Enter</kbd>: saved, on to the next ·
<kbd>Enter</kbd> on an empty box: what was read is right (a saved answer stays) ·
<kbd>-</kbd>: not digits (as in the CSV of review export) ·
<kbd>↑</kbd> or <kbd>PgUp</kbd>: previous · <kbd>↓</kbd> or <kbd>PgDn</kbd>: next
(moving saves nothing)</p>
</main><script>
"use strict";
const $ = id => document.getElementById(id), box = $("digits");
let items = [], at = 0, busy = false;
const say = (text, ok) => { $("msg").textContent = text; $("msg").className = ok ? "ok" : ""; };
const shown = c => c.not_digits ? "not digits" : c.digits;
const left = () => items.filter(i => !i.correction).length;
function next(from) {
  for (let k = 1; k <= items.length; k++) {
    const j = (from + k) % items.length;
    if (!items[j].correction) return j;
  }
  return Math.min(from + 1, items.length - 1);
}
function show() {
  const n = left(), it = items[at];
  $("count").textContent = `${n} of ${items.length} left`;
  $("done").hidden = n > 0;
  $("strip").replaceChildren(...items.map((i, k) => {
    const li = document.createElement("li");
    li.className = (i.correction ? "done " : "") + (k === at ? "now" : "");
    li.title = i.id;
    return li;
  }));
  $("item").hidden = !it;
  if (!it) return say("Nothing in this batch needs review.", true);
  $("item").dataset.item = it.id;
  const src = "crop/" + encodeURIComponent(it.id), crop = $("crop");
  if (!crop.src.endsWith(src)) {  // never the last item's crop under this one's answer
    crop.style.visibility = "hidden";
    crop.src = src;
  }
  if (items[at + 1]) new Image().src = "crop/" + encodeURIComponent(items[at + 1].id);
  $("where").textContent = `${it.file}, page ${it.page}, line ${it.line}` +
    (it.position === null ? "" : `, digit ${it.position + 1}`) + ` (${at + 1} of ${items.length})`;
  $("read").textContent = it.read || "(nothing)";
  $("runner").textContent = it.runner_up || "—";
  $("doubt").textContent = it.doubt.toFixed(3);
  const c = it.correction;
  $("saved").textContent = c ? shown(c) + (c.by ? ` (by ${c.by})` : "") : "not yet";
  $("saved").className = c ? "yes" : "";
  box.value = "";
  box.focus();
}
async function load() {
  try {
    const r = await fetch("api/items");
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    items = await r.json();
  } catch (e) {
    return say(`The items did not load (${e.message}): is digitflow review still running?`);
  }
  const first = items.findIndex(i => !i.correction);
  at = first < 0 ? 0 : first;
  show();
}
async function save(body) {
  const it = items[at];
  busy = true;
  try {
    const r = await fetch("api/corrections/" + encodeURIComponent(it.id), {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await r.json().catch(() => ({error: `HTTP ${r.status}`}));
    if (!r.ok) return say("Not saved: " + data.error);
    it.correction = data;
    say(`Saved ${shown(data)} for ${it.file} line ${it.line}.`, true);
    at = next(at);
    show();
  } catch (e) {
    say(`Not saved: the page's server did not answer (${e.message}): is it still running?`);
  } finally {
    busy = false;
  }
}
function keep() {
  at = next(at);
  say("Kept the saved answer.", true);
  show();
}
function move(by) {
  at = Math.max(0, Math.min(items.length - 1, at + by));
  say("");
  show();
}
document.addEventListener("keydown", e => {
  if (e.target !== box) box.focus();
  const it = items[at], typed = box.value.trim();
  const keys = ["Enter", "-", "ArrowUp", "ArrowDown", "PageUp", "PageDown"];
  if (!keys.includes(e.key) || e.ctrlKey || e.altKey || e.metaKey) return;
  e.preventDefault();
  if (!it || busy) return;
  if (e.key === "-") save({not_digits: true});
  else if (e.key === "Enter" && typed) save({digits: typed});
  else if (e.key === "Enter" && it.correction) keep();
  else if (e.key === "Enter" && it.read) save({digits: it.read});
  else if (e.key === "Enter") say("Nothing was read here: type the digits, or - if it holds none.");
  else move(e.key === "ArrowUp" || e.key === "PageUp" ? -1 : 1);
});
$("crop").onload = e => { e.target.style.visibility = "visible"; };
$("crop").onerror = () => say("The crop did not load: is digitflow review still running?");
load();
</script></body></html>
"""
