"""The train flow on the real Prefect engine, in local mode (one process per model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digitflow.cli import app
from digitflow.models import SEED_MODELS
from digitflow.storage import LocalStore
from flows.train import TrainParams, train_flow
from tests.conftest import STRINGS, clone_store
from tests.prefect_api import latest_artifact

pytestmark = pytest.mark.slow


def test_cli_trains_the_three_in_parallel(mnist_store: tuple[str, str], tmp_path: Path) -> None:
    uri = clone_store(mnist_store[0], tmp_path / "store")
    args = ["train", "--limit", "600", "--epochs", "2", "--strings", str(STRINGS),
            "--store", uri, "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["failures"] == {}
    names = sorted(c["model_name"] for c in summary["candidates"])
    assert names == ["baseline_mlp", "larger_cnn", "line_reader", "simple_cnn"]
    store = LocalStore(uri)
    for candidate in summary["candidates"]:
        assert store.exists(candidate["model_key"]) and store.exists(candidate["card_key"])
        assert candidate["dataset_version"] == mnist_store[1]
        if candidate["role"] == "classifier":
            assert candidate["val_error"] < 0.9  # better than chance after 2 short epochs
        else:  # the line reader, in its own role's layout, measured on the strings asked for
            assert candidate["model_key"].startswith("models/reader/candidates/")
            assert candidate["validation"]["size"] == candidate["test"]["size"] == STRINGS
    rows = json.loads(latest_artifact("training-candidates").data)
    assert [r["status"] for r in rows] == ["trained"] * 4
    assert rows == sorted(rows, key=lambda r: r["validation error %"])
    progress = latest_artifact("training-progress-larger-cnn")
    assert float(progress.data) == 100.0


def test_a_failing_model_does_not_lose_the_others(
    mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    uri = clone_store(mnist_store[0], tmp_path / "store")
    params = TrainParams(
        models=list(SEED_MODELS), limit=600, epochs=1, store=uri,
        overrides={"simple_cnn": {"learning_rate": 1e30}},
    )  # fmt: skip
    summary = train_flow(params)
    assert sorted(c.model_name for c in summary.candidates) == ["baseline_mlp", "larger_cnn"]
    assert "diverged" in summary.failures["simple_cnn"]
    store = LocalStore(uri)
    run = summary.training_run
    assert store.exists(f"models/candidates/{run}/baseline_mlp/card.json")
    assert store.exists(f"models/candidates/{run}/larger_cnn/card.json")
    assert not store.exists(f"models/candidates/{run}/simple_cnn/card.json")
    rows = json.loads(latest_artifact("training-candidates").data)
    assert any(r["model"] == "simple_cnn" and "diverged" in r["status"] for r in rows)


def test_unknown_model_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--models", "baseline_mlp,resnet", "--store", str(tmp_path), "--json"]
    )
    assert result.exit_code == 1
    assert "unknown model 'resnet'" in result.output
    assert not (tmp_path / "models").exists()
