"""Pages scanned at 300 and 600 dpi: read at a working size against read at their own size.

Generated form pages (scripts/make_scans.py --hard: 150 dpi, small hands, a third of the
digits touching) are scanned again at two and four times the resolution (resampled up),
saved as JPEG (quality 90) as scanners save them. Each set is read twice in this process,
as scoring reads a file (decode, find the lines and read them with the store's line
reader; and decode, cut the digits out and read them with its classifier):
  working  as digitflow reads them in lines: a large page decoded and segmented shrunk to
           about 150 dpi
  own size the baseline: every page decoded and segmented at its own size (no shrink)
Prints, for each resolution: how many pages were large enough to shrink; for the line
reader both ways, the CPU time a page takes to decode and find its lines (median of the
pages), the lines read exactly against the truth, and the ratio of own size to working;
and the same for the classifier, which cuts its digits from the page at its own size.

Usage: python benchmarks/large_scans.py --store STORE [--pages 30]
The store needs a line reader and a classifier champion (`digitflow retrain`, or `make run`).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import cv2
import numpy as np
from champion import mnist_dir
from PIL import Image

from digitflow.imaging import resolution
from digitflow.samples import HARD, load_mnist, make_page
from digitflow.scoring.extract import Reading, extract
from digitflow.scoring.infer import Scorer, resolve_model, scorer_for
from digitflow.scoring.truth import align
from digitflow.storage import open_store

TIMES = (1, 2, 4)


@contextmanager
def own_size() -> Iterator[None]:
    """Every page segmented at its own size, as before the working size."""
    length = resolution.WORKING_LENGTH
    resolution.WORKING_LENGTH = 10**9
    try:
        yield
    finally:
        resolution.WORKING_LENGTH = length


def scans(pages: int, times: int) -> list[tuple[bytes, list[str]]]:
    """``pages`` generated forms at ``times`` 150 dpi, as JPEG, with their lines' digits."""
    mnist, rng = load_mnist(mnist_dir()), np.random.default_rng(11)
    out = []
    for _ in range(pages):
        scan = make_page(mnist, rng, HARD)
        pixels = scan.pixels
        if times > 1:
            pixels = cv2.resize(pixels, None, fx=times, fy=times, interpolation=cv2.INTER_CUBIC)
        data = io.BytesIO()
        Image.fromarray(pixels).save(data, "JPEG", quality=90)
        out.append((data.getvalue(), scan.lines))
    return out


def read(
    files: list[tuple[bytes, list[str]]], reader: Literal["line", "classifier"], scorer: Scorer
) -> dict[str, float]:
    """Find and read every page's lines (or digits): CPU ms a page to find them (median),
    lines exact, lines."""
    finding, exact, total = [], 0, 0
    for k, (data, truth) in enumerate(files):
        start = time.process_time()
        found = extract(data, f"page{k}.jpg", Reading(reader))
        finding.append(time.process_time() - start)
        if reader == "line":
            texts = [r.text for r in scorer.read_lines([line for _, line in found.lines])]
        else:
            digits = scorer.probabilities(found.digits).argmax(axis=1)
            by_line: dict[tuple[int, int], str] = {}
            for (page, box), digit in zip(found.boxes, digits, strict=True):
                by_line[page, box.line] = by_line.get((page, box.line), "") + str(digit)
            texts = [by_line[key] for key in sorted(by_line)]
        exact += align(truth, texts)[0]
        total += len(truth)
    return {"find": 1000 * float(np.median(finding)), "exact": exact, "lines": total}


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with a line reader champion")
    parser.add_argument("--pages", type=int, default=30)
    args = parser.parse_args()
    store = open_store(args.store)
    scorers = {reader: scorer_for(resolve_model(store, choice=reader))
               for reader in ("line", "classifier")}  # fmt: skip
    for reader, scorer in scorers.items():
        read(scans(1, 1), reader, scorer)  # warm: the first page loads what later ones share
    print(
        f"{args.pages} generated form pages (JPEG); line reader {scorers['line'].version}, "
        f"classifier {scorers['classifier'].version}; CPU ms a page to decode and find its "
        "lines (digits), the median; lines read exactly"
    )
    print(f"{'dpi':>4} {'shrunk':>7} | {'line reader: working':>21} {'own size':>9} "
          f"{'own/working':>12} | {'classifier, own size':>21}")  # fmt: skip
    for times in TIMES:
        files = scans(args.pages, times)
        sizes = [Image.open(io.BytesIO(data)).size for data, _ in files]
        shrunk = sum(resolution.shrink_factor(size) > 1 for size in sizes)
        working = read(files, "line", scorers["line"])
        with own_size():
            own = read(files, "line", scorers["line"])
        digits = read(files, "classifier", scorers["classifier"])
        lines = int(own["lines"])
        print(
            f"{150 * times:>4} {shrunk:>3} / {len(files):<2}| "
            f"{working['find']:>6.0f} ms {working['exact']:>4.0f} / {lines:<4} "
            f"{own['find']:>4.0f} ms {own['exact']:>4.0f} {own['find'] / working['find']:>6.2f}x | "
            f"{digits['find']:>6.0f} ms {digits['exact']:>4.0f} / {lines:<4}"
        )


if __name__ == "__main__":
    main()
