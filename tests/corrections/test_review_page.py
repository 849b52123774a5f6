"""The review page: ``digitflow review`` serving a real scored batch, its API over HTTP, the
page in a real headless Chromium driven by keyboard only, and the command's errors.

Chromium is Debian's (scripts/install-browser.sh), driven through Playwright as in
tests/test_ui.py; the screenshot is copied to out/screenshots/ (git-ignored).
"""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image

from digitflow.corrections import items, record
from digitflow.corrections.web import host_name
from digitflow.storage import open_store
from tests.conftest import SCREENSHOTS, free_port
from tests.corrections.conftest import ReviewBatch

pytestmark = pytest.mark.slow

WAIT_MS = 30_000
STARTED = re.compile(
    r"Review (\d+) items of batch (\S+) at (http://127\.0\.0\.1:(\d+)/) — Ctrl\+C to stop\n"
)


class Review:
    """``digitflow review ARGS`` running in its own process, until ``stop``."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "digitflow", "review", *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()  # printed once the port listens
        started = STARTED.fullmatch(first)
        if started is None:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"`{' '.join(command)}` printed {first!r}; stderr: {err}")
        self.count, self.batch_id = int(started[1]), started[2]
        self.url, self.port = started[3], int(started[4])

    def stop(self) -> tuple[int, str]:
        """Ctrl+C, as a person stops it: its exit code and what it printed last."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out + err

    def __enter__(self) -> Review:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=30) as response:  # fmt: skip
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def saved(store_uri: str, batch_id: str) -> dict[str, tuple[str, bool, str]]:
    """Each saved correction of the batch as item -> (digits, not_digits, by)."""
    corrections = record.read_all(open_store(store_uri), batch_id)
    return {c.item: (c.digits, c.not_digits, c.by) for c in corrections}


def test_answers_sent_at_once_from_two_tabs_save_one_and_tell_the_other_to_reload(
    review_batch: ReviewBatch,
) -> None:
    """Pages that showed no answer for an item, saving at the same moment: one is saved,
    the others are told to reload (409), never two 200s with one answer silently lost."""
    found = items.review_items(open_store(review_batch.store), review_batch.batch_id)
    with Review(review_batch.batch_id, "--store", review_batch.store, "--port",
                str(free_port())) as page:  # fmt: skip
        for item in found[:3]:
            url = f"{page.url}api/corrections/{item.id}"
            start = threading.Barrier(6)

            def send(digits: str, url: str = url, start: threading.Barrier = start) -> int:
                start.wait()
                return post(url, {"digits": digits, "seen": None})[0]

            with ThreadPoolExecutor(6) as pool:
                statuses = list(pool.map(send, [str(k) * 3 for k in range(6)]))
            assert sorted(statuses) == [200] + [409] * 5, (item.id, statuses)
            kept = saved(review_batch.store, review_batch.batch_id)[item.id][0]
            assert kept == str(statuses.index(200)) * 3


def test_the_api_lists_items_largest_doubt_first_and_saves_at_once(
    review_batch: ReviewBatch,
) -> None:
    store = open_store(review_batch.store)
    found = items.review_items(store, review_batch.batch_id)
    first, second = found[0], found[1]
    truth = review_batch.truth[first.file]
    port = free_port()
    args = ["--store", review_batch.store, "--by", "ana"]
    with Review(review_batch.batch_id, "--port", str(port), *args) as page:
        assert (page.url, page.count) == (f"http://127.0.0.1:{port}/", len(found))
        status, listed = get(page.url + "api/items")
        assert status == 200
        rows = json.loads(listed)
        assert [r["id"] for r in rows] == [i.id for i in found]
        assert [r["doubt"] for r in rows] == sorted((r["doubt"] for r in rows), reverse=True)
        assert rows[0]["file"] == first.file and rows[0]["read"] == first.read
        assert all(r["correction"] is None for r in rows)

        status, answer = post(f"{page.url}api/corrections/{first.id}", {"digits": truth})
        assert status == 200 and (answer["digits"], answer["by"]) == (truth, "ana")
        assert saved(review_batch.store, review_batch.batch_id) == {first.id: (truth, False, "ana")}
        relisted = json.loads(get(page.url + "api/items")[1])
        assert relisted[0]["correction"]["digits"] == truth  # read again from the store

        # A newline is no digit, even at the end (where a `$` would let it pass).
        for bad in ({"digits": "12a"}, {"digits": ""}, {"digit": "1"}, {"digits": "12\n"}):
            status, error = post(f"{page.url}api/corrections/{second.id}", bad)
            assert status == 400, bad
            assert second.file in error["error"] or "send" in error["error"]
        status, error = post(f"{page.url}api/corrections/{second.id}", {"digits": "12a"})
        assert "'12a' is not digits: type 0-9 only" in error["error"]
        assert saved(review_batch.store, review_batch.batch_id) == {first.id: (truth, False, "ana")}

        status, _ = post(f"{page.url}api/corrections/{second.id}", {"not_digits": True})
        assert status == 200
        assert saved(review_batch.store, review_batch.batch_id)[second.id] == ("", True, "ana")

        # A page that showed no answer (a tab opened before another saved one) saves over
        # none: it is told to reload. One that showed the answer saved replaces it.
        url = f"{page.url}api/corrections/{first.id}"
        status, error = post(url, {"digits": "1", "seen": None})
        assert status == 409 and "answered elsewhere since this page showed it" in error["error"]
        status, replaced = post(url, {"digits": truth, "seen": answer["at"]})
        assert status == 200 and replaced["at"] > answer["at"]
        status, error = post(url, {"digits": "1", "seen": answer["at"]})  # no longer the last
        assert status == 409
        assert saved(review_batch.store, review_batch.batch_id)[first.id] == (truth, False, "ana")

        # Its type is read as HTTP reads it; a body nested thousands deep is no answer.
        loose = {"Content-Type": "Application/JSON ; charset=utf-8"}
        status, again = post(url, {"digits": truth, "seen": replaced["at"]}, loose)
        assert status == 200, again
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", f"/api/corrections/{first.id}", body=b"[" * 2000 + b"]" * 2000,
                     headers={"Content-Type": "application/json"})  # fmt: skip
        answered = conn.getresponse()
        assert answered.status == 400 and b"not JSON" in answered.read()
        conn.close()

        # No other site may frame the page (and turn keystrokes into answers).
        with urllib.request.urlopen(page.url, timeout=30) as response:
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
            assert response.headers["X-Content-Type-Options"] == "nosniff"

        # A form on another site can post text/plain to the page, but not JSON: refused.
        plain = {"Content-Type": "text/plain"}
        status, error = post(f"{page.url}api/corrections/{second.id}", {"digits": "7"}, plain)
        assert status == 415 and "not JSON" in error["error"]
        assert saved(review_batch.store, review_batch.batch_id)[second.id] == ("", True, "ana")

        # A body sent in chunks, with no length said first, is not read.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", f"/api/corrections/{second.id}", body=iter([b'{"digits": "7"}']),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)  # fmt: skip
        answered = conn.getresponse()
        assert answered.status == 413 and b"with its length" in answered.read()
        conn.close()
        assert saved(review_batch.store, review_batch.batch_id)[second.id] == ("", True, "ana")

        # A site that points a name of its own at 127.0.0.1 (DNS rebinding) is refused.
        rebound = {"Host": f"digits.example:{port}"}
        status, error = post(f"{page.url}api/corrections/{second.id}", {"digits": "7"}, rebound)
        assert status == 403 and "an IP address or localhost only" in error["error"]
        assert saved(review_batch.store, review_batch.batch_id)[second.id] == ("", True, "ana")
        assert get(page.url + "api/items", rebound)[0] == 403
        assert get(page.url, {"Host": f"localhost:{port}"})[0] == 200

        third = found[2]
        store.write_bytes(third.crop_key, store.read_bytes(third.crop_key)[:40])  # cut short
        status, error = post(f"{page.url}api/corrections/{third.id}", {"digits": "1"})
        assert status == 400 and "is not a crop" in error["error"], error
        assert third.id not in saved(review_batch.store, review_batch.batch_id)

        status, error = post(f"{page.url}api/corrections/{second.id}", {"digits": "1" * 5000})
        assert status == 413 and "at most 4096 bytes" in error["error"]

        status, error = post(f"{page.url}api/corrections/no-such-item", {"digits": "1"})
        assert status == 404 and "no item 'no-such-item'" in error["error"]
        assert get(page.url + "crop/no-such-item")[0] == 404

        # A file under corrections/ that is no correction: the page is told which, and why.
        stray = f"corrections/{review_batch.batch_id}/notes.json"
        store.write_bytes(stray, b"{ not json")
        status, body = get(page.url + "api/items")
        assert status == 500 and "notes.json is not a correction" in json.loads(body)["error"]
        store.delete(stray)
        assert get(f"{page.url}crop/{first.id}") == (200, store.read_bytes(first.crop_key))

        status, html = get(page.url)
        assert status == 200 and b"Review of batch fields, saved as ana" in html
        assert not re.search(rb"(src|href)=\"?(https?:)?//", html)  # nothing from elsewhere

        taken = subprocess.run(
            [sys.executable, "-m", "digitflow", "review", review_batch.batch_id,
             "--port", str(port), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert taken.returncode == 2 and taken.stdout == ""
        assert taken.stderr.startswith(f"error: --port: cannot listen on 127.0.0.1:{port}")

        code, last = page.stop()
    assert code == 0
    assert f"Stopped: {len(found) - 2} of {len(found)} items of batch fields left" in last


def shows_crop(page: Any, batch: ReviewBatch, item: items.ReviewItem) -> None:
    """Wait until the page shows ``item``'s own crop, loaded whole."""
    crop = Image.open(io.BytesIO(open_store(batch.store).read_bytes(item.crop_key)))
    page.wait_for_function(
        """([src, width]) => {
          const crop = document.getElementById("crop");
          return crop.src.endsWith(src) && crop.complete && crop.naturalWidth === width
            && crop.style.visibility === "visible";
        }""",
        arg=[f"crop/{quote(item.id, safe='')}", crop.width],
    )


def test_a_person_corrects_three_items_by_keyboard_and_finds_them_saved(
    review_batch: ReviewBatch, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    found = items.review_items(open_store(review_batch.store), review_batch.batch_id)
    n = len(found)
    assert n >= 5, f"only {n} items to review: the briefly trained reader doubts too little"
    truth = [review_batch.truth[item.file] for item in found]
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(WAIT_MS)
    log: list[str] = []
    page.on("console", lambda m: log.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"page error: {e}"))
    shot = tmp_path / "review.png"
    count, current, message = page.locator("#count"), page.locator("#item"), page.locator("#msg")
    keys = page.keyboard
    # No batch given: the newest with items, on a free port.
    with Review("--store", review_batch.store, "--by", "ana") as served:
        try:
            page.goto(served.url)
            expect(count).to_have_text(f"{n} of {n} left")
            expect(current).to_have_attribute("data-item", found[0].id)
            assert page.evaluate("document.activeElement.id") == "digits"  # type at once
            shows_crop(page, review_batch, found[0])

            keys.type("12a")
            keys.press("Enter")
            expect(message).to_contain_text("Not saved: ")
            expect(message).to_contain_text("'12a' is not digits")
            expect(count).to_have_text(f"{n} of {n} left")
            for _ in "12a":
                keys.press("Backspace")

            keys.type(truth[0])
            keys.press("Enter")
            expect(current).to_have_attribute("data-item", found[1].id)
            keys.type(truth[1])
            keys.press("Enter")
            expect(current).to_have_attribute("data-item", found[2].id)
            keys.type("4")
            keys.press("-")  # with digits typed, no "not digits": they would be lost
            expect(message).to_contain_text("clear the box first")
            expect(current).to_have_attribute("data-item", found[2].id)
            keys.press("Backspace")
            keys.press("-")  # not digits
            expect(current).to_have_attribute("data-item", found[3].id)
            expect(count).to_have_text(f"{n - 3} of {n} left")
            keys.press("ArrowDown")  # moving saves nothing
            expect(current).to_have_attribute("data-item", found[4].id)
            keys.press("Tab")  # the runner-up into the box, saved only by Enter
            expect(page.locator("#digits")).to_have_value(found[4].runner_up)
            expect(count).to_have_text(f"{n - 3} of {n} left")
            keys.press("PageUp")
            expect(current).to_have_attribute("data-item", found[3].id)

            page.reload()
            expect(count).to_have_text(f"{n - 3} of {n} left")
            expect(current).to_have_attribute("data-item", found[3].id)  # the first not done
            expect(page.locator("#strip li.done")).to_have_count(3)
            expect(page.locator("#saved")).to_have_text("not yet")
            keys.press("ArrowUp")
            expect(current).to_have_attribute("data-item", found[2].id)
            expect(page.locator("#saved")).to_have_text("not digits (by ana)")
            keys.press("PageUp")
            expect(page.locator("#saved")).to_have_text(f"{truth[1]} (by ana)")
            shows_crop(page, review_batch, found[1])  # its own, not the last one's
            page.screenshot(path=str(shot), full_page=True)
            assert saved(review_batch.store, served.batch_id) == {
                found[0].id: (truth[0], False, "ana"),
                found[1].id: (truth[1], False, "ana"),
                found[2].id: ("", True, "ana"),
            }

            # Enter on an empty box: what was read is right (if anything was read).
            keys.press("PageDown")
            keys.press("PageDown")
            expect(current).to_have_attribute("data-item", found[3].id)
            keys.press("Enter")
            if found[3].read:
                expect(count).to_have_text(f"{n - 4} of {n} left")
                assert saved(review_batch.store, served.batch_id)[found[3].id][0] == found[3].read
            else:
                expect(message).to_contain_text("Nothing was read here")
                expect(count).to_have_text(f"{n - 3} of {n} left")

            # Tab, then Enter: the runner-up saved, on the last item that has one.
            weighed = [k for k, item in enumerate(found) if item.runner_up and k > 3]
            if weighed:
                for _ in range(n):
                    keys.press("ArrowDown")
                for _ in range(n - 1 - weighed[-1]):
                    keys.press("ArrowUp")
                it = found[weighed[-1]]
                expect(current).to_have_attribute("data-item", it.id)
                keys.press("Tab")
                expect(page.locator("#digits")).to_have_value(it.runner_up)
                keys.press("Enter")
                expect(message).to_contain_text(f"Saved {it.runner_up}")
                assert saved(review_batch.store, served.batch_id)[it.id][0] == it.runner_up
        except Exception:
            page.screenshot(path=str(tmp_path / "review-failure.png"), full_page=True)
            print("\n".join(log))
            raise
        finally:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for taken in tmp_path.glob("review*.png"):
                shutil.copy2(taken, SCREENSHOTS / taken.name)
            page.close()
    assert not [line for line in log if line.startswith("page error")], log


def test_review_without_a_batch_to_review_is_a_one_line_error(tmp_path: Path) -> None:
    empty = str(tmp_path / "store")
    (tmp_path / "store").mkdir()  # a store with nothing in it yet (a missing one is named)
    for args in ([], ["no-such-batch"]):
        proc = subprocess.run(
            [sys.executable, "-m", "digitflow", "review", *args, "--store", empty],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 1 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        if args:
            assert proc.stderr.startswith(f"error: no scoring batch 'no-such-batch' in {empty}")
        else:
            assert proc.stderr.startswith(f"error: no scoring batch in {empty} has anything")


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:8000", "127.0.0.1"), ("[::1]:8000", "::1"), ("::1", "::1"),
     ("localhost", "localhost"), ("digits.example:80", "digits.example")],
)  # fmt: skip
def test_the_name_a_host_header_gives(header: str, name: str) -> None:
    assert host_name(header) == name
