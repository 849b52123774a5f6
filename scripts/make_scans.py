"""Generate a folder of realistic scanned forms from MNIST test digits, with ground truth.

    python scripts/make_scans.py --mnist ../shared/data/mnist --out /tmp/scans --pages 20 --seed 0

The generator itself is ``digitflow.samples``; this is its command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from digitflow.samples import HARD, IMAGES, LABELS, make_sample_folder

__all__ = ["main", "make_sample_folder"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, required=True, help="directory with t10k-*.gz")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the scans to")
    parser.add_argument("--pages", type=int, default=20, help="number of form pages")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--hard", action="store_true",
        help="forms as they often come: 150 dpi, small hands, a third of the digits touching",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for name in (IMAGES, LABELS):
        if not (args.mnist / name).is_file():
            parser.error(f"{args.mnist / name} not found: --mnist must hold the MNIST test files")
    style = HARD if args.hard else None
    out = make_sample_folder(args.mnist, args.out, args.pages, args.seed, style=style)
    print(f"wrote {args.pages} pages and 4 single digits to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
