"""How well a batch read its pages, against a ground-truth table (``file,page,line,digits``).

Digits are compared page by page after an edit-distance alignment of the page's digit
string with the truth's, so a missed or an extra digit costs one error, not a shifted
line. Lines count as exact when their whole digit string was read right; that count
aligns the lines read with the truth's, so a line read where the page has none (a
stray string) costs no exact line, and pages found with another number of lines than
they hold are counted apart. Strings read wrong are sorted by how (``misreadings``): too
few digits, too many, or digits confused.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Page = tuple[str, int]  # (file, page)


@dataclass(frozen=True)
class Accuracy:
    """Reading accuracy of a batch against its truth."""

    digits: int  # digits in the truth
    correct: int  # truth digits aligned with a digit read right
    extra: int  # digits read that the truth does not have
    lines: int
    exact_lines: int
    pages: int = 0  # pages in the truth or read
    miscounted_pages: int = 0  # pages read with another number of lines than they hold

    @property
    def digit_accuracy(self) -> float:
        """Share of the truth's digits read right."""
        return self.correct / self.digits if self.digits else 0.0

    @property
    def line_accuracy(self) -> float:
        """Share of the truth's lines read exactly."""
        return self.exact_lines / self.lines if self.lines else 0.0


def read_truth(path: Path | str) -> dict[Page, list[str]]:
    """truth.csv as {(file, page): [digits of line 0, line 1, …]}."""
    pages: dict[Page, dict[int, str]] = {}
    with open(path, newline="") as stream:
        for row in csv.DictReader(stream):
            page = (row["file"], int(row["page"]))
            pages.setdefault(page, {})[int(row["line"])] = row["digits"]
    return {page: [lines[k] for k in sorted(lines)] for page, lines in pages.items()}


def lines_by_page(ledger_rows: list[dict[str, Any]]) -> dict[Page, dict[int, str]]:
    """The per-file ledger rows (``files.parquet``) as {(file, page): {line: digits}}."""
    pages: dict[Page, dict[int, str]] = {}
    for row in ledger_rows:
        for line in row["lines"] or []:
            pages.setdefault((row["file"], line["page"]), {})[line["line"]] = line["digits"]
    return pages


def read_lines(ledger_rows: list[dict[str, Any]]) -> dict[Page, list[str]]:
    """The per-file ledger rows as {(file, page): [line digits, …]}, top to bottom."""
    pages = lines_by_page(ledger_rows)
    return {page: [lines[k] for k in sorted(lines)] for page, lines in pages.items()}


def align(truth: Sequence[Any], read: Sequence[Any]) -> tuple[int, int]:
    """(matches, insertions) of an optimal edit alignment of ``read`` against ``truth``."""
    # Each cell: (edit distance, -matches): fewest edits first, then most matches.
    previous = [(j, 0) for j in range(len(read) + 1)]
    for i in range(1, len(truth) + 1):
        current = [(i, 0)]
        for j in range(1, len(read) + 1):
            same = truth[i - 1] == read[j - 1]
            diagonal = previous[j - 1]
            current.append(
                min(
                    (diagonal[0] + (0 if same else 1), diagonal[1] - (1 if same else 0)),
                    (previous[j][0] + 1, previous[j][1]),
                    (current[j - 1][0] + 1, current[j - 1][1]),
                )
            )
        previous = current
    distance, matches = previous[-1][0], -previous[-1][1]
    insertions = distance - (len(truth) - matches)
    return matches, insertions


def compare(truth: dict[Page, list[str]], read: dict[Page, list[str]]) -> Accuracy:
    """Digit and exact-line accuracy of ``read`` against ``truth``, page by page."""
    digits = correct = extra = lines = exact = miscounted = 0
    pages = sorted(set(truth) | set(read))
    for page in pages:
        want, got = truth.get(page, []), read.get(page, [])
        miscounted += len(want) != len(got)
        matches, inserted = align("".join(want), "".join(got))
        digits += sum(len(line) for line in want)
        correct += matches
        extra += inserted
        lines += len(want)
        exact += align(want, got)[0]
    return Accuracy(digits=digits, correct=correct, extra=extra, lines=lines, exact_lines=exact,
                    pages=len(pages), miscounted_pages=miscounted)  # fmt: skip


@dataclass(frozen=True)
class Misreadings:
    """How strings were misread: too few digits, too many, or as many with some wrong."""

    strings: int
    short: int
    long: int
    swapped: int
    confusions: Counter[tuple[str, str]]  # (true digit, read digit), in the swapped strings

    def summary(self, top: int = 6) -> str:
        """One line: the kinds of misreading and the commonest confusions."""
        pairs = ", ".join(f"{t}→{r} {n}" for (t, r), n in self.confusions.most_common(top))
        return (f"of {self.strings}: {self.short} read short, {self.long} long, {self.swapped} "
                f"with a digit wrong ({pairs or 'none'})")  # fmt: skip


def misreadings(truth: Sequence[str], read: Sequence[str]) -> Misreadings:
    """The kinds of misreading of ``read`` against ``truth``, string by string."""
    confusions: Counter[tuple[str, str]] = Counter()
    short = long = swapped = 0
    for t, r in zip(truth, read, strict=True):
        if len(r) < len(t):
            short += 1
        elif len(r) > len(t):
            long += 1
        elif r != t:
            swapped += 1
            confusions.update((a, b) for a, b in zip(t, r, strict=True) if a != b)
    return Misreadings(len(truth), short, long, swapped, confusions)
