"""The review page itself: HTML, CSS and the keyboard handling, in one document."""

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
<kbd>-</kbd> on an empty box: not digits (as in the CSV of review export) ·
<kbd>Tab</kbd>: the runner-up into the box (mend it, or <kbd>Enter</kbd>) ·
<kbd>↑</kbd> or <kbd>PgUp</kbd>: previous · <kbd>↓</kbd> or <kbd>PgDn</kbd>: next
(moving saves nothing)</p>
</main><script>
"use strict";
const $ = id => document.getElementById(id), box = $("digits");
let items = [], at = 0, busy = false;
const say = (text, ok) => { $("msg").textContent = text; $("msg").className = ok ? "ok" : ""; };
const shown = c => c.not_digits ? "not digits" : c.digits;
// A file's name set apart, so that right-to-left marks in it reorder nothing around it.
const named = f => "\u2068" + f + "\u2069";
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
  $("where").textContent = `${named(it.file)}, page ${it.page}, line ${it.line}` +
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
    // The answer this page showed: the server refuses to save over another since.
    const seen = it.correction ? it.correction.at : null;
    const r = await fetch("api/corrections/" + encodeURIComponent(it.id), {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({...body, seen})});
    const data = await r.json().catch(() => ({error: `HTTP ${r.status}`}));
    if (!r.ok) return say("Not saved: " + data.error);
    it.correction = data;
    say(`Saved ${shown(data)} for ${named(it.file)} line ${it.line}.`, true);
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
  const keys = ["Enter", "-", "Tab", "ArrowUp", "ArrowDown", "PageUp", "PageDown"];
  if (!keys.includes(e.key) || e.ctrlKey || e.altKey || e.metaKey) return;
  e.preventDefault();
  if (!it || busy || e.repeat) return;  // a key held down answers once
  if (e.key === "Tab" && it.runner_up) {
    box.value = it.runner_up;
    say("The runner-up is in the box: Enter saves it.", true);
  } else if (e.key === "Tab") say("Nothing else was weighed here: type the digits.");
  else if (e.key === "-" && !typed) save({not_digits: true});
  else if (e.key === "-") say("- marks an image with no digits: clear the box first.");
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
