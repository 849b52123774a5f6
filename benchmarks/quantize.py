"""The line reader in 8-bit integers: how much faster it reads, and what it reads differently.

Reading lines is most of what a page costs the scoring process (finding them is done in
the reader processes), and nearly all of the reading is the reader's convolutions. A
reader's export is stored in 8 bits where it reads its validation strings as well
(digitflow/reader/quantize.py); this measures what that changes. In one run, with the
reader champion of --store:
  1. its Keras model is exported to ONNX in float, and quantised as training does it:
     the convolutions and poolings in 8 bits (weights per channel), calibrated on the
     first 256 of the 1,000 validation strings (MNIST's validation slice); the GRU and
     the dense layers stay in float;
  2. the float export and the 8-bit one read, as scoring reads a page's lines
     (``read_with``: each line at its own width, the unsure ones at three; scoring also
     slants the unsure fields, which this leaves out): the 1,080 real check amounts of
     orand-car-a-train, the lines found on --pages generated hard form pages, and 1,000
     strings written with MNIST test digits, none of them calibrated on.
Prints per set the exact strings of each, the strings the two read differently, and the
CPU seconds each took to read them all (ratios: this machine is noisy), each model in
turn, twice.

Usage: python benchmarks/quantize.py --store STORE [--data DIR] [--pages 40]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from champion import REPO, mnist_dir

from digitflow.exported import export_reader, session_run
from digitflow.fitting import load_images
from digitflow.imaging.fields import find_lines
from digitflow.imaging.pages import load_pages
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.pointer import current_champion
from digitflow.reader.candidate import test_strings, validation_seed, validation_strings
from digitflow.reader.infer import read_with, score_strings
from digitflow.reader.quantize import CALIBRATION, quantize
from digitflow.samples import HARD, make_sample_folder
from digitflow.scoring.truth import compare, read_truth
from digitflow.storage import open_store

DATA = REPO.parent / "shared/data/realscans-dev"
Inputs = list[np.ndarray]


def check_amounts(data: Path) -> tuple[Inputs, list[str]]:
    """The reader's input of each real check-amount field, and its digits."""
    source = data / "orand-car-a-train"
    with open(source / "labels.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    inputs = []
    for row in rows:
        page = next(load_pages((source / row["file"]).read_bytes(), row["file"]))
        assert page.pixels is not None
        inputs.append(find_lines(page.pixels, "field")[0].inputs())
    return inputs, [row["digits"] for row in rows]


def form_lines(root: Path, pages: int) -> tuple[Inputs, list[tuple[str, int]], Path]:
    """The lines found on generated hard form pages: inputs, (file, page) of each, truth."""
    folder = make_sample_folder(mnist_dir(), root / "forms", pages, seed=11,
                                truth_csv=root / "forms.csv", style=HARD)  # fmt: skip
    inputs, where = [], []
    for path in sorted(folder.iterdir()):
        for page in load_pages(path.read_bytes(), path.name):
            if page.pixels is None:
                continue
            for line in find_lines(page.pixels):
                inputs.append(line.inputs())
                where.append((path.name, page.index))
    return inputs, where, root / "forms.csv"


def timed(run: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray]
          ) -> tuple[list[str], float]:  # fmt: skip
    """What ``run`` reads of the inputs, and the CPU seconds it took."""
    start = time.process_time()
    texts = [line.text for line in read_with(run, inputs)]
    return texts, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with a line reader champion")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pages", type=int, default=40)
    args = parser.parse_args()
    store = open_store(args.store)
    champion, _ = current_champion(store, READER)
    if champion is None:
        raise SystemExit(f"{args.store} has no line reader champion")
    images = load_images(store, champion.dataset_version, None, 0)
    seed = validation_seed(store, champion.dataset_version)
    with tempfile.TemporaryDirectory(prefix="digitflow-quantize-") as tmp:
        root = Path(tmp)
        model = load_model(store, champion.model_key, champion.sha256)
        if not export_reader(model, root / "float.onnx"):
            raise SystemExit(f"{champion.id} does not export to ONNX")
        calibration = validation_strings(images, seed).strings.fields[:CALIBRATION]
        start = time.perf_counter()
        quantize(root / "float.onnx", root / "int8.onnx", [f.pixels for f in calibration])
        print(f"quantised {champion.id} in {time.perf_counter() - start:.1f} s, calibrated on "
              f"{len(calibration)} validation strings")  # fmt: skip
        runs = {kind: session_run((root / f"{kind}.onnx").read_bytes(), kind)
                for kind in ("float", "int8")}  # fmt: skip
        strings = test_strings(images, seed).strings
        amounts, amount_truth = check_amounts(args.data)
        lines, where, forms_csv = form_lines(root, args.pages)
        sets = {
            "check amounts (real)": (amounts, amount_truth),
            "form lines (generated, hard)": (lines, None),
            "MNIST test strings (generated)": ([f.pixels for f in strings.fields], strings.texts),
        }
        print("| set | strings | float: exact | 8 bits: exact | read differently "
              "| CPU s, float / 8 bits (best of two) | ratio |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, (inputs, truth) in sets.items():
            read: dict[str, list[str]] = {}
            cpu: dict[str, float] = {}
            for _ in range(2):
                for kind, run in runs.items():
                    read[kind], seconds = timed(run, inputs)
                    cpu[kind] = min(cpu.get(kind, np.inf), seconds)
            if truth is None:  # form lines: compared page by page with the truth's lines
                exact = {kind: compare(read_truth(forms_csv), _by_page(where, texts)).line_accuracy
                         for kind, texts in read.items()}  # fmt: skip
            else:
                exact = {kind: score_strings(truth, texts).exact_rate
                         for kind, texts in read.items()}  # fmt: skip
            differ = sum(a != b for a, b in zip(read["float"], read["int8"], strict=True))
            ratio = cpu["float"] / cpu["int8"]
            print(f"| {name} | {len(inputs)} | {100 * exact['float']:.2f} % | "
                  f"{100 * exact['int8']:.2f} % | {differ} | {cpu['float']:.2f} / "
                  f"{cpu['int8']:.2f} | {ratio:.2f}x |", flush=True)  # fmt: skip


def _by_page(where: list[tuple[str, int]], texts: list[str]) -> dict[tuple[str, int], list[str]]:
    pages: dict[tuple[str, int], list[str]] = {}
    for page, text in zip(where, texts, strict=True):
        pages.setdefault(page, []).append(text)
    return pages


if __name__ == "__main__":
    main()
