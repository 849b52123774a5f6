"""The review page's guard: the host names it answers at, the headers on every answer, and
items that cannot be told apart (in process, through Starlette's test client)."""

from __future__ import annotations

import logging
import socket

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from digitflow.corrections.items import ReviewItem
from digitflow.corrections.web import LOCAL_NAMES, Guard, is_loopback, names_for, unique


def _guarded(names: frozenset[str]) -> TestClient:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return TestClient(Guard(Starlette(routes=[Route("/", hello)]), names))


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("192.168.1.7", False)],
)  # fmt: skip
def test_which_listening_addresses_reach_this_machine_alone(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback
    names = names_for(address, address)
    assert (names == LOCAL_NAMES) is loopback
    if not loopback:  # reached over the network by this machine's names, or the one given
        assert socket.gethostname().lower() in names
        assert "scans.example" in names_for("scans.example", address)


@pytest.mark.parametrize("listening", ["127.0.0.2", "0.0.0.0"])
def test_a_name_not_this_machines_is_refused_wherever_it_listens(listening: str) -> None:
    client = _guarded(names_for(listening, listening))
    for host in ("127.0.0.1:8000", "[::1]:8000", "10.1.2.3", "LOCALHOST:80"):
        answer = client.get("/", headers={"Host": host})
        assert (answer.status_code, answer.text) == (200, "hello"), host
    for host in ("rebind.attacker.example", "rebind.attacker.example:80", "", "127.0.0.1."):
        answer = client.get("/", headers={"Host": host})
        assert answer.status_code == 403, host
        message = answer.json()["error"]
        assert "this page answers at an IP address or localhost" in message, message
    if listening == "0.0.0.0":  # reached over the network by this machine's name
        assert client.get("/", headers={"Host": socket.gethostname()}).status_code == 200


def test_every_answer_forbids_framing_and_type_guessing() -> None:
    client = _guarded(LOCAL_NAMES)
    for host in ("localhost", "elsewhere.example"):
        headers = client.get("/", headers={"Host": host}).headers
        assert headers["x-frame-options"] == "DENY", host
        assert headers["content-security-policy"] == "frame-ancestors 'none'"
        assert headers["x-content-type-options"] == "nosniff"


def _item(item_id: str, file: str, line: int = 0) -> ReviewItem:
    return ReviewItem(id=item_id, batch_id="b", file=file, page=0, line=line, position=None,
                      read="12", runner_up="", doubt=0.5, crop_key=f"k/{file}")  # fmt: skip


def test_items_of_two_files_that_share_an_id_are_left_off_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two names that differ only in characters an object key cannot hold, whose short
    # digests collide, give one id.
    found = [_item("scan_.jpg-0e04471f-p0-l0", "scan ,;[{.jpg"),
             _item("scan_.jpg-0e04471f-p0-l0", "scan $;%]).jpg"),
             _item("scan_.jpg-0e04471f-p0-l1", "scan ,;[{.jpg", line=1),
             _item("plain.png-12345678-p0-l0", "plain.png")]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        kept = unique(found)
    assert [i.id for i in kept] == ["scan_.jpg-0e04471f-p0-l1", "plain.png-12345678-p0-l0"]
    assert "scan $;%]).jpg and scan ,;[{.jpg are left off the review page" in caplog.text
