"""Fixtures for imaging tests: real data sets (skipped when absent) and the scan generator."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The MNIST directory: DIGITFLOW_MNIST_SOURCE if it is a local folder, else ../shared."""
    candidates = [
        os.environ.get("DIGITFLOW_MNIST_SOURCE", ""),
        str(REPO.parent / "shared/data/mnist"),
    ]
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_file() for name in MNIST_TEST_FILES):
            return Path(candidate)
    pytest.skip(
        "MNIST test files not found: set DIGITFLOW_MNIST_SOURCE to a folder holding "
        f"{' and '.join(MNIST_TEST_FILES)}, or put them in {REPO.parent / 'shared/data/mnist'}"
    )


@pytest.fixture(scope="session")
def realscans_dir() -> Path:
    """The non-MNIST handwritten digits kept for development, next to the repository."""
    folder = REPO.parent / "shared/data/realscans-dev"
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"real scans not found: expected {folder}/labels.csv")
    return folder


@pytest.fixture(scope="session")
def make_scans() -> ModuleType:
    """scripts/make_scans.py, imported by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_scans", REPO / "scripts/make_scans.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sample_folder(
    make_scans: ModuleType, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Forty generated form pages (JPEG, PNG, a TIFF and a PDF) and four single digits."""
    return make_scans.make_sample_folder(mnist_dir, tmp_path_factory.mktemp("scans"), 40, 0)
