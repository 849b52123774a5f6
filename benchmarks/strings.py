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
The check amounts are scored twice over: against their labels, and against the labels as
checked by eye (``orand_errata.csv``: 22 of the 1,080 found wrong, one of them written so
that two readings stand). For each: strings (fields, lines, digits) read exactly, and
digit accuracy (1 - edit distance over the truth's digits), and files (or pages) a second
through the flow in this process (the flow's fixed start, about a second, included); for
the fields and digits, how the misread ones were misread (too few digits, too many, or
digits confused, and which). And what the review threshold (its default) made of them:
the share of strings sent to review (a digit of them needs review, or nothing was read),
the share of the misread ones among those, and how many of the others were read exactly
(a form line counts as misread unless its page was found with as many lines as its truth
has and the line reads as its truth's line of that place); and how many form pages were
found with another number of lines than they hold (which the exact-lines count, aligning
lines, forgives).

Usage: python benchmarks/strings.py --store STORE [--data DIR] [--pages 40] [--limit N]
The store needs both champions: `digitflow retrain` (default profile) trains and promotes
them; a line reader of the `best` profile reads best.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from champion import REPO, mnist_dir

from digitflow.reader.infer import score_strings
from digitflow.samples import HARD, make_sample_folder
from digitflow.scoring.infer import ReaderChoice
from digitflow.scoring.truth import (
    Page,
    compare,
    lines_by_page,
    misreadings,
    read_lines,
    read_truth,
)

DATA = REPO.parent / "shared/data/realscans-dev"
ERRATA = Path(__file__).with_name("orand_errata.csv")


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


def checked_truth(truth: dict[str, str], read: dict[str, str]) -> dict[str, str]:
    """The check amounts' labels as checked by eye: each label ``ERRATA`` finds wrong
    replaced by what is written (of two readings that stand, the one read if it was)."""
    checked = dict(truth)
    with open(ERRATA, newline="") as stream:
        for row in csv.DictReader(stream):
            if row["file"] not in truth:
                continue  # left out by --limit
            if truth[row["file"]] != row["label"]:
                raise SystemExit(f"{ERRATA.name}: {row['file']} is labelled "
                                 f"{truth[row['file']]}, not {row['label']}")  # fmt: skip
            readings = row["written"].split("|")
            got = read.get(row["file"], "")
            checked[row["file"]] = got if got in readings else readings[0]
    return checked


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
) -> tuple[float, list[dict], list[dict]]:
    """The score flow over a folder with one reader: seconds, the per-file rows and the
    digit rows."""
    from digitflow.scoring import commits
    from digitflow.storage import open_store
    from flows.score import ScoreParams, score_flow

    start = time.perf_counter()
    summary = score_flow(ScoreParams(input=str(folder), store=store, batch_id=batch_id,
                                     reader=reader))  # fmt: skip
    seconds = time.perf_counter() - start
    ledger, digits = commits.read_batch(open_store(store), summary.batch_id)
    return seconds, ledger.to_pylist(), digits.to_pylist()


def per_file(rows: list[dict]) -> dict[str, str]:
    """What was read in each file: the digits of its lines, in order."""
    return {r["file"]: "".join(line["digits"] for line in r["lines"] or []) for r in rows}


Review = tuple[float, float, float]  # shares: sent to review, misread caught, exact of the rest


def review(right: list[bool], doubted: list[bool]) -> Review:
    """The share of strings sent to review, the share of the misread ones among them,
    and the share of the others read exactly."""
    wrong = sum(not r for r in right)
    caught = sum(d and not r for r, d in zip(right, doubted, strict=True))
    rest = [r for r, d in zip(right, doubted, strict=True) if not d]
    return (sum(doubted) / max(len(right), 1), caught / wrong if wrong else 1.0,
            sum(rest) / len(rest) if rest else 1.0)  # fmt: skip


def file_review(names: list[str], truth: dict[str, str], rows: list[dict]) -> Review:
    """``review`` of files that are one string each."""
    by_name = {r["file"]: r for r in rows}
    read = per_file(rows)
    right = [read.get(n, "") == truth[n] for n in names]
    doubted = [n not in by_name or by_name[n]["needs_review"] > 0 or by_name[n]["digits"] == 0
               for n in names]  # fmt: skip
    return review(right, doubted)


def line_review(truth: dict[Page, list[str]], rows: list[dict], digits: list[dict]) -> Review:
    """``review`` of the lines found on form pages."""
    doubted_lines = {(d["file"], d["page"], d["line"]) for d in digits if d["needs_review"]}
    right, doubted = [], []
    for (name, page), found in lines_by_page(rows).items():
        want = truth.get((name, page), [])
        for at, line in enumerate(sorted(found)):  # top to bottom, as the truth is
            right.append(len(want) == len(found) and want[at] == found[line])
            doubted.append((name, page, line) in doubted_lines or not found[line])
    return review(right, doubted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with both champions")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--limit", type=int, default=None, help="fields and digits per set")
    args = parser.parse_args()
    # The temporary server's telemetry, as in score.py: it races the flows for its database.
    os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false")
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
                seconds, rows, _ = score(folder, args.store, batch, reader)
                read = per_file(rows)
                names = sorted(truth)
                texts = [truth[n] for n in names], [read.get(n, "") for n in names]
                s = score_strings(*texts)
                print(f"{name}, {reader}: {misreadings(*texts).summary()}", flush=True)
                table.append((name, reader, len(names), s.exact_rate, s.digit_accuracy,
                              len(names) / seconds, "files",
                              *file_review(names, truth, rows)))  # fmt: skip
                if name == "check amounts":
                    checked = checked_truth(truth, read)
                    c = score_strings([checked[n] for n in names], texts[1])
                    table.append((f"{name}, labels checked by eye", reader, len(names),
                                  c.exact_rate, c.digit_accuracy, len(names) / seconds,
                                  "files", *file_review(names, checked, rows)))  # fmt: skip
            seconds, rows, digits = score(forms, args.store, f"bench-{stamp}-forms-{reader}",
                                          reader)  # fmt: skip
            form_truth = read_truth(root / "forms.csv")
            accuracy = compare(form_truth, read_lines(rows))
            pages = sum(r["pages"] for r in rows)
            print(f"form pages, {reader}: {accuracy.miscounted_pages} of {accuracy.pages} found "
                  "with another number of lines than they hold", flush=True)  # fmt: skip
            table.append(("form pages", reader, accuracy.lines, accuracy.line_accuracy,
                          accuracy.digit_accuracy, pages / seconds, "pages",
                          *line_review(form_truth, rows, digits)))  # fmt: skip
    print("| set | reader | strings | exact strings | digit accuracy | speed "
          "| to review | misread ones caught | exact of the rest |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, reader, n, exact, by_digit, rate, unit, *shares in sorted(table, key=lambda r: r[0]):
        doubted, caught, rest = (f"{100 * x:.1f} %" for x in shares)
        print(f"| {name} | {reader} | {n} | {100 * exact:.1f} % | {100 * by_digit:.1f} % | "
              f"{rate:.1f} {unit}/s | {doubted} | {caught} | {rest} |")  # fmt: skip
    keys = ("set", "reader", "strings", "exact", "digits", "rate", "unit", "to_review",
            "misread_caught", "rest_exact")  # fmt: skip
    print(json.dumps([dict(zip(keys, row, strict=True)) for row in table]))


if __name__ == "__main__":
    main()
