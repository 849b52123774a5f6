"""Scoring fixtures: generated scans with their truth (the champions are the root
conftest's)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from digitflow.storage import ObjectStore, open_store
from tests.conftest import REPO


def make_scans() -> ModuleType:
    """scripts/make_scans.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_scans", REPO / "scripts/make_scans.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sample_scans(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Six generated form pages (JPEG, PNG, PDF, TIFF) and four single digits; truth.csv
    moved next to the folder so the folder holds scans only: (folder, truth.csv)."""
    root = tmp_path_factory.mktemp("scans")
    folder = make_scans().make_sample_folder(mnist_dir, root / "scans", pages=6, seed=7)
    truth = root / "truth.csv"
    shutil.move(folder / "truth.csv", truth)
    return folder, truth


def copy_models(source_uri: str, target: ObjectStore) -> None:
    """Copy the models (candidates, champion pointer) of a store into another."""
    source = open_store(source_uri)
    for key in source.list("models/"):
        target.write_bytes(key, source.read_bytes(key))
