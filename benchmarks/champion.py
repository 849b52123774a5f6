"""A store with a champion for the scoring benchmarks: the one given, or one trained now."""

from __future__ import annotations

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def mnist_dir() -> Path:
    """The MNIST files: $DIGITFLOW_MNIST_SOURCE or ../shared/data/mnist."""
    for candidate in (os.environ.get("DIGITFLOW_MNIST_SOURCE"), REPO.parent / "shared/data/mnist"):
        if candidate and (Path(candidate) / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    raise SystemExit("MNIST not found: set DIGITFLOW_MNIST_SOURCE to a folder with its .gz files")


def champion_store(store: str | None, tmp: Path, model: str, epochs: int) -> str:
    """``store`` if given (it must have a champion), else a new store whose champion is
    ``model`` trained with the seed recipe (Adam, batch 200, ``epochs``) on full MNIST."""
    from digitflow import registry
    from digitflow.data.ingest import ingest
    from digitflow.storage import open_store
    from digitflow.training import TrainConfig, train_model

    if store:
        if registry.current_champion(open_store(store))[0] is None:
            raise SystemExit(f"{store} has no champion: run `digitflow retrain` first")
        return store
    local = open_store(str(tmp / "store"))
    start = time.perf_counter()
    version = ingest(local, str(mnist_dir())).version
    record = train_model(local, version, TrainConfig(model=model, epochs=epochs), "bench")
    registry.promote(local, registry.read_card(local, "bench", model), {"reason": "bench"}, None)
    print(f"trained {model} ({epochs} epochs, full MNIST) in {time.perf_counter() - start:.0f} s:"
          f" test error {100 * record.test_error:.2f} %")  # fmt: skip
    return local.uri


def with_reader(store_uri: str, epochs: int) -> None:
    """Give the store a line reader champion unless it has one: the seed reader recipe for
    ``epochs`` epochs (its speed is the seed reader's; it reads worse than 24 epochs would)."""
    from digitflow import registry
    from digitflow.data import dataset
    from digitflow.layout import READER
    from digitflow.recipes import READER_RECIPE, TrainConfig
    from digitflow.storage import open_store
    from digitflow.training import train_model

    store = open_store(store_uri)
    if registry.current_champion(store, READER)[0] is not None:
        return
    start = time.perf_counter()
    recipe = READER_RECIPE.model_dump(exclude={"epochs"})
    config = TrainConfig(model="line_reader", epochs=epochs, **recipe)
    card = train_model(store, dataset.latest(store), config, "bench")
    registry.promote(store, card, {"reason": "bench"}, None, layout=READER)
    print(f"trained line_reader ({epochs} epochs) in {time.perf_counter() - start:.0f} s: "
          f"validation string error {100 * card.val_error:.1f} %")  # fmt: skip
