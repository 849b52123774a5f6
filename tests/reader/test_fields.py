"""Lines for the reader: layouts, a field read whole, and a page's lines cut out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitflow.imaging.fields import FIELD_MAX_HEIGHT, find_lines, layout_of
from digitflow.reader import field
from digitflow.samples import load_mnist, make_page
from tests.reader.conftest import paper_with_bars


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((50, 200), "field"), ((16, 16), "field"), ((240, 240), "field"),
     ((FIELD_MAX_HEIGHT + 1, 2000), "page"), ((1600, 1200), "page")],
)  # fmt: skip
def test_layout_by_size(shape: tuple[int, int], layout: str) -> None:
    assert layout_of(shape) == layout
    assert layout_of(shape, "page") == "page" and layout_of(shape, "field") == "field"


def test_a_field_is_one_line_mapped_onto_the_image() -> None:
    lines = find_lines(paper_with_bars(bars=(40, 120)))
    assert len(lines) == 1
    line = lines[0]
    assert line.field  # read slanted too
    assert line.pixels.dtype == np.uint8 and line.pixels.shape[0] == field.HEIGHT
    inked = np.flatnonzero(line.pixels.max(axis=0) > 128)
    assert line.x0 + inked.min() * line.x_scale == pytest.approx(40, abs=3)


def test_a_page_is_cut_into_its_lines_top_to_bottom(mnist_dir: Path) -> None:
    scan = make_page(load_mnist(mnist_dir), np.random.default_rng(5))
    lines = find_lines(scan.pixels)
    assert len(lines) == len(scan.lines)
    tops = [line.y0 for line in lines]
    assert tops == sorted(tops)
    assert not any(line.field for line in lines)
    # Each a strip of writing as wide as its digits (0.56 of a height a digit or more on
    # 30 pages), not a piece of one.
    for line, text in zip(lines, scan.lines, strict=True):
        assert line.pixels.shape[1] > 0.45 * field.HEIGHT * len(text)


def test_a_pages_lines_carry_their_pieces_of_ink_as_mnist_digits(mnist_dir: Path) -> None:
    scan = make_page(load_mnist(mnist_dir), np.random.default_rng(5))
    lines = find_lines(scan.pixels)
    digits = sum(len(text) for text in scan.lines)
    # A piece is a digit, or two that touch (a few on these pages).
    assert 0.85 * digits <= sum(len(line.pieces) for line in lines) <= digits
    for line in lines:
        assert [p.x0 for p in line.pieces] == sorted(p.x0 for p in line.pieces)
        right = line.x0 + line.pixels.shape[1] * line.x_scale
        for piece in line.pieces:
            assert line.x0 <= piece.x0 < piece.x1 <= right + 1
            assert piece.digit.shape == (28, 28) and piece.digit.dtype == np.uint8
            ink = piece.digit.astype(np.float64)
            rows, cols = np.indices(ink.shape)
            # Normalised as MNIST was: the centre of mass at the middle.
            assert (rows * ink).sum() / ink.sum() == pytest.approx(14, abs=1.5)
            assert (cols * ink).sum() / ink.sum() == pytest.approx(14, abs=1.5)
    assert find_lines(paper_with_bars(bars=(40, 120)))[0].pieces == ()  # a field: none
