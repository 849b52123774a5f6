"""Digit strings read by the classifier path and the line-reader path, side by side.

In one run, with the classifier champion and the line reader champion of one store, the
score flow reads three sets, each twice (``--reader classifier`` and ``--reader line``):
  check amounts  orand-car-a-train from ../shared/data/realscans-dev (1,080 real bank-check
                 amount fields: textured backgrounds, separators, touching digits); no model
                 of digitflow's trains on them
  form pages     --pages generated forms as they often come (scripts/make_scans.py --hard:
                 150 dpi, small hands, a third of the digits touching), with their truth
  single digits  the USPS and Semeion digits of realscans-dev, one per image (each group
                 on its own)
For each: strings (fields, lines, digits) read exactly, and digit accuracy (1 - edit
distance over the truth's digits), and files (or pages) a second through the flow in this
process (the flow's fixed start, about a second, included); for the fields and digits, how
the misread ones were misread (too few digits, too many, or digits confused, and which).

Usage: python benchmarks/strings.py --store STORE [--data DIR] [--pages 40] [--limit N]
The store needs both champions: `digitflow retrain` (default profile) trains and promotes
them; a line reader of the `best` profile reads best.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

from champion import REPO, mnist_dir

from digitflow.reader.infer import score_strings
from digitflow.samples import HARD, make_sample_folder
from digitflow.scoring.infer import ReaderChoice
from digitflow.scoring.truth import compare, misreadings, read_lines, read_truth

DATA = REPO.parent / "shared/data/realscans-dev"


def fields_folder(data: Path, root: Path, limit: int | None) -> tuple[Path, dict[str, str]]:
    """The check-amount fields copied into a folder of their own, and each one's digits."""
    source = data / "orand-car-a-train"
    with open(source / "labels.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))[:limit]
    folder = root / "car-a"
    folder.mkdir()
    for row in rows:
        shutil.copy(source / row["file"], folder / row["file"])
    return folder, {row["file"]: row["digits"] for row in rows}


def singles_folder(data: Path, root: Path, group: str, limit: int | None
                   ) -> tuple[Path, dict[str, str]]:  # fmt: skip
    """The single real digits of one group of realscans-dev (usps, semeion) in a folder,
    and each one's digit."""
    with open(data / "labels.csv", newline="") as stream:
        rows = [r for r in csv.DictReader(stream) if r["path"].split("/")[0] == group]
    folder = root / group
    folder.mkdir()
    truth = {}
    for row in rows[:limit]:
        name = row["path"].replace("/", "_")
        shutil.copy(data / row["path"], folder / name)
        truth[name] = row["label"]
    return folder, truth


def score(
    folder: Path, store: str, batch_id: str, reader: ReaderChoice
) -> tuple[float, list[dict]]:
    """The score flow over a folder with one reader: seconds, and the per-file rows."""
    from digitflow.scoring import commits
    from digitflow.storage import open_store
    from flows.score import ScoreParams, score_flow

    start = time.perf_counter()
    summary = score_flow(ScoreParams(input=str(folder), store=store, batch_id=batch_id,
                                     reader=reader))  # fmt: skip
    seconds = time.perf_counter() - start
    return seconds, commits.read_ledger(open_store(store), summary.batch_id).to_pylist()


def per_file(rows: list[dict]) -> dict[str, str]:
    """What was read in each file: the digits of its lines, in order."""
    return {r["file"]: "".join(line["digits"] for line in r["lines"] or []) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with both champions")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--limit", type=int, default=None, help="fields and digits per set")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    table = []
    with tempfile.TemporaryDirectory(prefix="digitflow-strings-") as tmp:
        root = Path(tmp)
        sets = {
            "check amounts": fields_folder(args.data, root, args.limit),
            "single digits, USPS": singles_folder(args.data, root, "usps", args.limit),
            "single digits, Semeion": singles_folder(args.data, root, "semeion", args.limit),
        }
        forms = make_sample_folder(mnist_dir(), root / "forms", args.pages, seed=11,
                                   truth_csv=root / "forms.csv", style=HARD)  # fmt: skip
        readers: tuple[ReaderChoice, ...] = ("classifier", "line")
        for reader in readers:
            for name, (folder, truth) in sets.items():
                batch = f"bench-{stamp}-{name.split()[-1].lower()}-{reader}"
                seconds, rows = score(folder, args.store, batch, reader)
                read = per_file(rows)
                names = sorted(truth)
                texts = [truth[n] for n in names], [read.get(n, "") for n in names]
                s = score_strings(*texts)
                print(f"{name}, {reader}: {misreadings(*texts).summary()}", flush=True)
                table.append((name, reader, len(names), s.exact_rate, s.digit_accuracy,
                              len(names) / seconds, "files"))  # fmt: skip
            seconds, rows = score(forms, args.store, f"bench-{stamp}-forms-{reader}", reader)
            accuracy = compare(read_truth(root / "forms.csv"), read_lines(rows))
            pages = sum(r["pages"] for r in rows)
            table.append(("form pages", reader, accuracy.lines, accuracy.line_accuracy,
                          accuracy.digit_accuracy, pages / seconds, "pages"))  # fmt: skip
    print("| set | reader | strings | exact strings | digit accuracy | speed |")
    print("|---|---|---:|---:|---:|---:|")
    for name, reader, n, exact, digits, rate, unit in sorted(table, key=lambda r: r[0]):
        print(f"| {name} | {reader} | {n} | {100 * exact:.1f} % | {100 * digits:.1f} % | "
              f"{rate:.1f} {unit}/s |")  # fmt: skip
    print(json.dumps([dict(zip(("set", "reader", "strings", "exact", "digits", "rate", "unit"),
                               row, strict=True)) for row in table]))  # fmt: skip


if __name__ == "__main__":
    main()
