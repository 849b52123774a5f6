"""The registry on both stores: checked promotion, racing writers, rollback, safe loading."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from digitflow import registry
from digitflow.candidates import CardDraft, Split
from digitflow.errors import ModelError, NotFoundError, PreconditionFailed
from digitflow.registry import Card, RegistryError
from digitflow.storage import ObjectStore, open_store


@pytest.fixture
def store(store_uri: str) -> ObjectStore:
    return open_store(store_uri)


def draft(run: str, name: str) -> CardDraft:
    """The card of a stand-in candidate, before its upload."""
    return CardDraft(
        training_run=run, model_name=name, dataset_version="v1",
        validation=Split(size=100, error=0.01), test=Split(size=200, error=0.02),
        parameter_count=10, wall_s=1.0, device="CPU (1 threads)", input="stand-in bytes",
    )  # fmt: skip


def candidate(store: ObjectStore, tmp_path: Path, name: str, run: str = "run1") -> Card:
    """Upload a stand-in model file (promotion only checks bytes) and its card."""
    path = tmp_path / f"{run}-{name}.keras"
    path.write_bytes(f"model {run}/{name} ".encode() * 100)
    return registry.save_candidate(store, path, draft(run, name))


def info(reason: str) -> dict[str, Any]:
    return {"promoted": True, "reason": reason}


def test_promote_verifies_then_points_and_records(store: ObjectStore, tmp_path: Path) -> None:
    assert registry.current_champion(store) == (None, None)
    card = candidate(store, tmp_path, "cnn")
    champion = registry.promote(store, card, info("first"), expected_etag=None)

    assert (champion.model_key, champion.sha256) == (card.model_key, card.sha256)
    assert champion.card_key == "models/candidates/run1/cnn/card.json"
    assert champion.previous is None and champion.dataset_version == "v1"
    current, etag = registry.current_champion(store)
    assert current == champion and etag
    [entry] = registry.history(store)
    assert entry.action == "promote" and entry.decision == info("first")
    assert entry.champion is not None and entry.champion.model_key == card.model_key
    assert entry.replaced is None and entry.key == champion.record_key
    assert entry.key.startswith("models/history/") and entry.key.endswith("-promote.json")


def test_second_promotion_keeps_the_replaced_pointer(store: ObjectStore, tmp_path: Path) -> None:
    first = registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    _, etag = registry.current_champion(store)
    second = registry.promote(store, candidate(store, tmp_path, "b"), info("2"), etag)
    assert second.previous == first.alone()  # without the decision: the history has it
    assert registry.history(store)[-1].replaced == first.alone()


def test_corrupted_upload_is_refused_and_nothing_changes(
    store: ObjectStore, tmp_path: Path
) -> None:
    first = registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    pointer_before = registry.current_champion(store)
    bad = candidate(store, tmp_path, "b")
    store.write_bytes(bad.model_key, b"truncated")
    with pytest.raises(ModelError, match=r"run1/b/model.keras: sha256 .* does not match"):
        registry.promote(store, bad, info("2"), pointer_before[1])
    assert registry.current_champion(store) == pointer_before
    assert registry.current_champion(store)[0] == first
    assert [e.action for e in registry.history(store)] == ["promote"]


def test_a_candidate_is_never_replaced_by_another_under_its_name(
    store: ObjectStore, tmp_path: Path
) -> None:
    champion = registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    card_before = store.read_bytes(champion.card_key)
    other = tmp_path / "other.keras"
    other.write_bytes(b"another model entirely")
    with pytest.raises(RegistryError, match=r"run1.* already has a a candidate .*run1/a/card"):
        registry.save_candidate(store, other, draft("run1", "a"))
    assert store.read_bytes(champion.card_key) == card_before
    registry.verify_model(store, champion.model_key, champion.sha256)  # still the champion's


def test_missing_model_file_is_refused_naming_the_key(store: ObjectStore, tmp_path: Path) -> None:
    card = candidate(store, tmp_path, "a")
    store.delete(card.model_key)
    with pytest.raises(ModelError, match=r"run1/a/model.keras does not exist"):
        registry.promote(store, card, info("1"), None)
    assert registry.current_champion(store) == (None, None)


def test_stale_etag_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    with pytest.raises(PreconditionFailed, match="decide again"):
        registry.promote(store, candidate(store, tmp_path, "b"), info("2"), None)
    assert registry.current_champion(store)[0].model_name == "a"  # type: ignore[union-attr]


@pytest.mark.parametrize("with_champion", [False, True])
def test_racing_promotions_exactly_one_wins(
    store: ObjectStore, tmp_path: Path, with_champion: bool
) -> None:
    if with_champion:
        registry.promote(store, candidate(store, tmp_path, "old"), info("0"), None)
    _, etag = registry.current_champion(store)
    cards = [candidate(store, tmp_path, f"m{i}") for i in range(4)]
    start = threading.Barrier(len(cards))
    won: list[str] = []
    lost: list[str] = []

    def race(card: Card) -> None:
        start.wait()
        try:
            won.append(registry.promote(store, card, info(card.model_name), etag).model_name)
        except PreconditionFailed as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=race, args=(card,)) for card in cards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(won) == 1 and len(lost) == 3
    assert all("another promotion or rollback" in message for message in lost)
    assert registry.current_champion(store)[0].model_name == won[0]  # type: ignore[union-attr]
    promotes = [e for e in registry.history(store) if e.action == "promote"]
    assert len(promotes) == 1 + with_champion
    assert promotes[-1].champion is not None and promotes[-1].champion.model_name == won[0]


def test_rollback_restores_the_previous_champion_in_one_step(
    store: ObjectStore, tmp_path: Path
) -> None:
    first = registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    _, etag = registry.current_champion(store)
    registry.promote(store, candidate(store, tmp_path, "b"), info("2"), etag)

    restored = registry.rollback(store)
    assert (restored.model_key, restored.sha256) == (first.model_key, first.sha256)
    assert restored.action == "rollback" and restored.previous is None
    assert registry.current_champion(store)[0] == restored
    last = registry.history(store)[-1]
    assert last.action == "rollback" and last.champion and last.replaced
    assert (last.champion.model_name, last.replaced.model_name) == ("a", "b")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(store)


def test_a_rollback_from_a_champion_replaced_since_undoes_nothing(
    store: ObjectStore, tmp_path: Path
) -> None:
    """A person rolls back the champion they saw (run1/b); a promotion of c landed first."""
    registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    registry.promote(store, candidate(store, tmp_path, "b"), info("2"),
                     registry.current_champion(store)[1])  # fmt: skip
    registry.promote(store, candidate(store, tmp_path, "c"), info("3"),
                     registry.current_champion(store)[1])  # fmt: skip
    before = registry.current_champion(store)
    with pytest.raises(RegistryError, match=r"champion .* is run1/c, not run1/b .*nothing was"):
        registry.rollback(store, expected="run1/b")
    assert registry.current_champion(store) == before
    assert registry.rollback(store, expected="run1/c").model_name == "b"


def test_changes_at_one_instant_each_keep_their_history_record(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hosts whose clocks read the same instant (one behind the other, or coarse)."""
    instant = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(registry, "utc_now", lambda: instant)
    registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    registry.promote(store, candidate(store, tmp_path, "b"), info("2"),
                     registry.current_champion(store)[1])  # fmt: skip
    registry.rollback(store)
    changes = [(e.action, e.champion.model_name if e.champion else None)
               for e in registry.history(store)]  # fmt: skip
    assert changes == [("promote", "a"), ("promote", "b"), ("rollback", "a")]
    assert registry.current_champion(store)[0].record_key.endswith("-rollback-3.json")  # type: ignore[union-attr]


def test_rollback_with_no_champion_is_a_clear_error(store: ObjectStore) -> None:
    with pytest.raises(RegistryError, match="no champion in .*nothing to roll back"):
        registry.rollback(store)


def test_rollback_verifies_the_restored_model(store: ObjectStore, tmp_path: Path) -> None:
    first = registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    _, etag = registry.current_champion(store)
    registry.promote(store, candidate(store, tmp_path, "b"), info("2"), etag)
    store.write_bytes(first.model_key, b"tampered")
    with pytest.raises(ModelError, match="does not match"):
        registry.rollback(store)
    assert registry.current_champion(store)[0].model_name == "b"  # type: ignore[union-attr]


def test_refusals_are_recorded_and_history_is_oldest_first(
    store: ObjectStore, tmp_path: Path
) -> None:
    registry.promote(store, candidate(store, tmp_path, "a"), info("1"), None)
    at = datetime(2099, 1, 1, tzinfo=UTC)  # three refusals at the same instant
    keys = [registry.record_refusal(store, {"reason": f"refusal {i}"}, at=at) for i in range(3)]
    assert keys[1].endswith("-refuse-2.json") and keys[2].endswith("-refuse-3.json")
    entries = registry.history(store)
    assert [e.action for e in entries] == ["promote", "refuse", "refuse", "refuse"]
    assert [(e.decision or {})["reason"] for e in entries[1:]] == [f"refusal {i}" for i in range(3)]
    assert entries[1].champion is not None and entries[1].champion.model_name == "a"


def test_a_refusal_written_again_by_a_retry_is_recorded_once(store: ObjectStore) -> None:
    at = datetime(2099, 1, 1, tzinfo=UTC)
    first = registry.record_refusal(store, {"reason": "r"}, decision_id="d1", at=at)
    again = registry.record_refusal(store, {"reason": "r"}, decision_id="d1", at=at)
    other = registry.record_refusal(store, {"reason": "r"}, decision_id="d2", at=at)
    assert first == again and other.endswith("-refuse-2.json")
    assert len(registry.history(store)) == 2


def test_cards_are_listed_typed_and_read_whatever_else_they_carry(
    store: ObjectStore, tmp_path: Path
) -> None:
    candidate(store, tmp_path, "b")
    candidate(store, tmp_path, "a", run="run0")
    written = json.loads(store.read_bytes("models/candidates/run1/b/card.json"))
    assert (written["val_error"], written["test_error"]) == (0.01, 0.02)
    written["from_a_later_version"] = True  # a field this version does not know is left out
    store.write_bytes("models/candidates/run1/b/card.json", json.dumps(written).encode())
    listing = registry.list_candidates(store)
    assert [c.id for c in listing.cards] == ["run0/a", "run1/b"] and listing.unreadable == []
    card = registry.read_card(store, "run1", "b")
    assert (card.val_error, card.test.size, card.card_key) == (0.01, 200, written["card_key"])
    with pytest.raises(NotFoundError, match=r"models/candidates/run1/zz/card.json"):
        registry.read_card(store, "run1", "zz")


def test_load_model_refuses_tampered_files_and_loads_good_ones(
    store: ObjectStore, tmp_path: Path
) -> None:
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path / "tiny.keras"
    model.save(path)
    card = registry.save_candidate(store, path, draft("run1", "tiny"))

    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    loaded = registry.load_model(store, card.model_key, card.sha256)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)

    good = path.read_bytes()
    for tampered in (good[: len(good) // 2], good[:-1] + bytes([good[-1] ^ 1])):
        store.write_bytes(card.model_key, tampered)
        with pytest.raises(ModelError, match="does not match the card's .* refusing to load"):
            registry.load_model(store, card.model_key, card.sha256)


def test_no_library_module_imports_prefect_and_the_registry_needs_no_tensorflow() -> None:
    import pkgutil
    import subprocess
    import sys

    import digitflow

    library = [
        m.name
        for m in pkgutil.walk_packages(digitflow.__path__, "digitflow.")
        if not m.name.startswith(("digitflow.cli", "digitflow.__main__"))
    ]
    assert len(library) > 30 and "digitflow.scoring.readers" in library
    registry_only = ["digitflow.registry", "digitflow.promotion", "digitflow.reports",
                     "digitflow.history", "digitflow.layout", "digitflow.candidates"]  # fmt: skip
    code = (
        "import importlib, sys\n"
        f"for name in {registry_only!r}: importlib.import_module(name)\n"
        "loaded = {'keras', 'tensorflow', 'prefect'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
        f"for name in {library!r}: importlib.import_module(name)\n"
        "loaded = {'prefect', 'flows', 'tasks'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _with_export(store: ObjectStore, tmp_path: Path, name: str) -> Card:
    """A stand-in candidate with an ONNX export beside its model file."""
    path, onnx = tmp_path / f"{name}.keras", tmp_path / f"{name}.onnx"
    path.write_bytes(f"model {name} ".encode() * 100)
    onnx.write_bytes(f"export {name} ".encode() * 100)
    return registry.save_candidate(store, path, draft("run1", name), onnx=onnx)


def test_a_broken_export_is_refused_at_promotion_and_at_rollback(
    store: ObjectStore, tmp_path: Path
) -> None:
    # The export is what scores: a champion whose export is broken reads nothing.
    first = _with_export(store, tmp_path, "a")
    assert first.onnx_key is not None
    store.write_bytes(first.onnx_key, b"cut short")
    with pytest.raises(ModelError, match=r"run1/a/model.onnx: sha256 .* does not match"):
        registry.promote(store, first, info("1"), None)
    assert registry.current_champion(store) == (None, None)
    store.write_bytes(first.onnx_key, b"export a " * 100)
    registry.promote(store, first, info("1"), None)
    _, etag = registry.current_champion(store)
    registry.promote(store, _with_export(store, tmp_path, "b"), info("2"), etag)
    store.write_bytes(first.onnx_key, b"cut short")
    with pytest.raises(ModelError, match=r"run1/a/model.onnx: sha256 .* does not match"):
        registry.rollback(store)
    assert registry.current_champion(store)[0].model_name == "b"  # type: ignore[union-attr]
