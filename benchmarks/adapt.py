"""How much a team's own corrections teach the line reader: real check amounts, before and
after tuning on 50, 100 and 300 of them.

In a store of the benchmark's own (a copy of --store's datasets and models: the store
given is never changed, and digitflow's shipped models never see these fields):
  1. the reader champion scores all 1,080 fields of orand-car-a-train (realscans-dev);
  2. the first N fields play the part of a user's corrections: their labels are written
     to a CSV and typed in through `digitflow review import`'s path (exchange.import_csv);
  3. `adapt_flow` builds the corrections dataset, tunes the champion on it and gates the
     result (held-out corrections and MNIST's validation strings);
  4. the tuned reader (promoted or not) scores the other 780 fields.
For each N: exact-string rate on the 780 before and after (against their labels, and
against the labels as checked by eye: strings.py's errata; the corrections keep the
labels as given, as a user's typing may err); MNIST test error before and after, twice:
the 10,000 test digits each read alone by the reader (as a field of one digit), and the
1,000 strings written with test digits (the reader's card; reported only); the gate's
verdict, and the tuning's wall time; and how the misread fields were misread. The
classifier is not tuned: its MNIST test error does not move.

Usage: python benchmarks/adapt.py --store STORE [--data DIR] [--counts 50,100,300]
           [--epochs N] [--steps N]   (default: the recipe's, digitflow/recipes.py)
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

import numpy as np
from champion import REPO
from strings import checked_truth

from digitflow.candidates import read_card
from digitflow.corrections import exchange
from digitflow.layout import READER
from digitflow.pointer import current_champion
from digitflow.reader.infer import score_strings
from digitflow.recipes import ADAPT_RECIPE, ADAPT_STEPS
from digitflow.scoring import commits
from digitflow.scoring.truth import misreadings
from digitflow.storage import open_store
from flows.adapt import AdaptParams, adapt_flow
from flows.score import ScoreParams, score_flow

DATA = REPO.parent / "shared/data/realscans-dev"
POOL = 300  # the first fields: a user's corrections; the rest are read before and after


def own_store(source: str, target: Path) -> str:
    """A store of the benchmark's own with ``source``'s datasets and models."""
    for part in ("datasets", "models"):
        shutil.copytree(Path(source) / part, target / part)
    return str(target)


def read(store: str, folder: Path, batch_id: str, model: str | None = None) -> list[dict]:
    """Score a folder (with the reader champion, or ``model``): its per-file rows."""
    summary = score_flow(ScoreParams(input=str(folder), store=store, batch_id=batch_id,
                                     model=model, reader="line"))  # fmt: skip
    return commits.read_ledger(open_store(store), summary.batch_id).to_pylist()


def mnist_digit_error(store: str, model_key: str, sha256: str) -> float:
    """The reader's error on MNIST's 10,000 test digits, each read alone as a field."""
    from digitflow.data import dataset
    from digitflow.model_files import load_model
    from digitflow.reader import field
    from digitflow.reader.infer import read_inputs

    s = open_store(store)
    test = dataset.read_split(s, dataset.latest(s), "test")
    model = load_model(s, model_key, sha256)
    pad = ((8, 8), (8, 8))
    inputs = [field.prepare(255 - np.pad(d, pad), dark=True).pixels for d in test.images]
    read = [line.text for line in read_inputs(model, inputs)]
    return float(np.mean([r != str(label) for r, label in zip(read, test.labels, strict=True)]))


def exact(rows: list[dict], truth: dict[str, str], label: str) -> tuple[float, float]:
    """Shares of ``truth``'s fields read exactly, against their labels and against the
    labels as checked by eye; how the others were misread is printed."""
    got = {r["file"]: "".join(ln["digits"] for ln in r["lines"] or []) for r in rows}
    names = sorted(truth)
    texts = [truth[n] for n in names], [got.get(n, "") for n in names]
    print(f"{label}: {misreadings(*texts).summary()}", flush=True)
    checked = checked_truth(truth, got)
    return (score_strings(*texts).exact_rate,
            score_strings([checked[n] for n in names], texts[1]).exact_rate)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with a line reader champion")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--counts", default="50,100,300")
    parser.add_argument("--epochs", type=int, default=ADAPT_RECIPE.epochs)
    parser.add_argument("--steps", type=int, default=ADAPT_STEPS)
    args = parser.parse_args()
    # The temporary server's telemetry, as in score.py: it races the flows for its database.
    os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false")
    counts = [int(c) for c in args.counts.split(",")]
    source = args.data / "orand-car-a-train"
    with open(source / "labels.csv", newline="") as stream:
        labels = [(r["file"], r["digits"]) for r in csv.DictReader(stream)]
    pool, rest = labels[:POOL], dict(labels[POOL:])
    table = []
    with tempfile.TemporaryDirectory(prefix="digitflow-adapt-") as tmp:
        root = Path(tmp)
        (root / "all").mkdir()
        (root / "rest").mkdir()
        for name, _ in labels:
            shutil.copy(source / name, root / "all" / name)
            if name in rest:
                shutil.copy(source / name, root / "rest" / name)
        base = own_store(args.store, root / "base")
        champion, _ = current_champion(open_store(base), READER)
        assert champion is not None, f"{args.store} has no line reader champion"
        before_card = read_card(open_store(base), champion.training_run, champion.model_name,
                                READER)  # fmt: skip
        digits_before = mnist_digit_error(base, champion.model_key, champion.sha256)
        rows = read(base, root / "all", "car-a")
        before, before_checked = exact([r for r in rows if r["file"] in rest], rest,
                                       "before tuning")  # fmt: skip
        lines = {r["file"]: r["lines"] or [] for r in rows}
        print(
            f"champion {champion.id}: {100 * before:.1f} % exact on the {len(rest)} fields; "
            f"MNIST test strings error {100 * before_card.test_error:.2f} %, test digits read "
            f"alone {100 * digits_before:.2f} %",
            flush=True,
        )
        for count in counts:
            store = str(root / f"n{count}")
            shutil.copytree(base, store)
            corrections = root / f"corrections-{count}.csv"
            with corrections.open("w", newline="") as f:
                out = csv.writer(f)
                out.writerow(exchange.COLUMNS)
                usable = [(n, d) for n, d in pool[:count] if len(lines[n]) == 1]
                for name, digits in usable:
                    out.writerow([name, lines[name][0]["page"], lines[name][0]["line"], digits])
            imported = exchange.import_csv(open_store(store), "car-a", corrections, by="bench")
            start = time.perf_counter()
            summary = adapt_flow(AdaptParams(store=store, epochs=args.epochs, steps=args.steps))
            seconds = time.perf_counter() - start
            assert summary.training_run and summary.promotion is not None
            card = read_card(open_store(store), summary.training_run, "line_reader", READER)
            after, after_checked = exact(read(store, root / "rest", f"rest-{count}", card.id),
                                         rest, f"after tuning on {count}")  # fmt: skip
            table.append({
                "corrections": count, "imported": imported.saved,
                "exact_before": before, "exact_after": after,
                "checked_before": before_checked, "checked_after": after_checked,
                "mnist_test_error_before": before_card.test_error,
                "mnist_test_error_after": card.test_error,
                "mnist_digit_error_before": digits_before,
                "mnist_digit_error_after": mnist_digit_error(store, card.model_key, card.sha256),
                "heldout": summary.corrections.heldout if summary.corrections else 0,
                "promoted": summary.promotion.promoted, "reason": summary.promotion.reason,
                "seconds": seconds,
            })  # fmt: skip
            print(json.dumps(table[-1]), flush=True)
    print(
        f"\n| corrections (imported) | exact on the other {len(rest)}: before → after | "
        "the same, labels checked by eye | "
        "MNIST test digits read alone by the reader: error before → after | "
        "MNIST test strings: error before → after | gate | tuning |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|")
    for t in table:
        print(
            f"| {t['corrections']} ({t['imported']}) | {100 * t['exact_before']:.1f} % → "
            f"{100 * t['exact_after']:.1f} % | {100 * t['checked_before']:.1f} % → "
            f"{100 * t['checked_after']:.1f} % | {100 * t['mnist_digit_error_before']:.2f} % → "
            f"{100 * t['mnist_digit_error_after']:.2f} % | "
            f"{100 * t['mnist_test_error_before']:.2f} % → "
            f"{100 * t['mnist_test_error_after']:.2f} % | "
            f"{'promoted' if t['promoted'] else 'refused'} | {t['seconds']:.0f} s |"
        )


if __name__ == "__main__":
    main()
