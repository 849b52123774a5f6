"""Task: a folder of generated sample scans (with ground truth) for the main job."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from pydantic import BaseModel

from digitflow.data import dataset
from digitflow.samples import Mnist, make_sample_folder
from digitflow.scoring.commits import read_ledger
from digitflow.scoring.truth import compare, read_lines, read_truth
from digitflow.storage import open_store


class SampleFolder(BaseModel):
    """Where the sample scans and their ground truth are."""

    folder: str
    truth_csv: str
    pages: int


@task(name="make-sample-scans")
def make_samples(
    store_uri: str, dataset_version: str, work_dir: str, pages: int, seed: int
) -> SampleFolder:
    """Generate scanned forms from the dataset's test digits (reused when already made)."""
    root = Path(work_dir) / f"samples-{dataset_version}-{pages}p-seed{seed}"
    folder, truth = root / "scans", root / "truth.csv"
    if not truth.is_file():
        test = dataset.read_split(open_store(store_uri), dataset_version, "test")
        make_sample_folder(Mnist(test.images, test.labels), folder, pages, seed, truth)
    get_run_logger().info("sample scans: %s (ground truth %s)", folder, truth)
    return SampleFolder(folder=str(folder.absolute()), truth_csv=str(truth.absolute()), pages=pages)


class SampleAccuracy(BaseModel):
    """How well a batch read the sample scans, against their ground truth."""

    digits: int
    digit_accuracy: float
    lines: int
    line_accuracy: float
    pages: int = 0
    miscounted_pages: int = 0  # found with another number of lines than they hold


@task(name="check-against-truth")
def check_against_truth(store_uri: str, batch_id: str, truth_csv: str) -> SampleAccuracy:
    """Compare a batch's readings with the samples' ground truth."""
    ledger = read_ledger(open_store(store_uri), batch_id).to_pylist()
    accuracy = compare(read_truth(truth_csv), read_lines(ledger))
    get_run_logger().info(
        "sample scans read: %.1f %% of %d digits, %.1f %% of %d lines exactly; %d of %d "
        "pages found with another number of lines than they hold",
        100 * accuracy.digit_accuracy, accuracy.digits, 100 * accuracy.line_accuracy,
        accuracy.lines, accuracy.miscounted_pages, accuracy.pages,
    )  # fmt: skip
    return SampleAccuracy(
        digits=accuracy.digits,
        digit_accuracy=accuracy.digit_accuracy,
        lines=accuracy.lines,
        line_accuracy=accuracy.line_accuracy,
        pages=accuracy.pages,
        miscounted_pages=accuracy.miscounted_pages,
    )
