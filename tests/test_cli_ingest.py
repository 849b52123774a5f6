"""`digitflow ingest` through the real Prefect engine (ephemeral API)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digitflow.cli import app
from tests.prefect_api import latest_artifact

pytestmark = pytest.mark.slow


def _ingest(*args: str) -> dict:
    result = CliRunner().invoke(app, ["ingest", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ingest_twice_same_version_nothing_rewritten(mnist_dir: Path, store_uri: str) -> None:
    store = store_uri
    first = _ingest("--source", str(mnist_dir), "--store", store)
    assert first["counts"] == {"train": 60_000, "test": 10_000}
    assert first["written"] is True
    second = _ingest("--source", str(mnist_dir), "--store", store)
    assert second["version"] == first["version"] and second["written"] is False

    artifact = latest_artifact("mnist-dataset")
    rows = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
    assert rows[-1] == {"digit": "all", "train": 60_000, "test": 10_000}
    assert rows[5]["test"] == 892


def test_bad_source_exits_nonzero_with_one_line_reason(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "digitflow",
            "ingest",
            "--source",
            str(empty),
            "--store",
            str(tmp_path / "store"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "missing train-images-idx3-ubyte.gz" in last
    assert not (tmp_path / "store").exists()
