"""The main job end to end on the embedded defaults (ephemeral Prefect, local store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digitflow.cli import app
from digitflow.storage import LocalStore
from tests.conftest import STRINGS

pytestmark = pytest.mark.slow


def test_pipeline_retrains_promotes_and_reads_the_sample_scans(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGITFLOW_WORK_DIR", str(tmp_path / "work"))
    store = str(tmp_path / "store")
    args = ["pipeline", "--source", str(mnist_dir), "--store", store, "--limit", "3000",
            "--epochs", "2", "--strings", str(STRINGS), "--max-error", "0.5", "--pages", "4",
            "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    promotion = summary["retrain"]["promotion"]
    assert promotion["classifier"]["promoted"] is True
    # The main job trains a line reader too; two short epochs on 3,000 digits are too few
    # for it to clear its floor, so the classifier reads the scans.
    assert promotion["reader"] is not None and promotion["reader"]["promoted"] is False
    scoring = summary["scoring"]
    assert scoring["files"] == 8 and scoring["quarantined"] == 0  # 4 pages + 4 single digits
    assert scoring["digits"] > 100
    assert summary["sample_accuracy"]["digit_accuracy"] > 0.6  # a weak, quick champion
    assert LocalStore(store).exists(scoring["files_uri"].split("/store/", 1)[1])
    assert Path(summary["scans"]).is_relative_to(tmp_path / "work")
