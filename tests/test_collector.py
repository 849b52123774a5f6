"""The collector paused while a command loads: resumed once, and never turned on where it
was off before the pause."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from digitflow import collector


@pytest.fixture(autouse=True)
def collector_as_it_was() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    collector._paused[0] = False
    (gc.enable if enabled else gc.disable)()
    gc.unfreeze()


def test_pause_then_resume_collects_again_with_the_loaded_objects_frozen() -> None:
    gc.enable()
    collector.pause()
    assert not gc.isenabled()
    loaded = [[] for _ in range(1000)]
    collector.resume()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded)
    collector.resume()  # once only
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    collector.pause()
    collector.resume()
    assert not gc.isenabled()
