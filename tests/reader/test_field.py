"""Field preparation: polarity, paper removal, the band of writing, source coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.reader import field
from tests.reader.conftest import paper_with_bars


def test_dark_and_light_ink_both_come_out_bright_on_black() -> None:
    dark = paper_with_bars()
    light = 255 - dark
    assert field.dark_ink(dark) and not field.dark_ink(light)
    for grey in (dark, light):
        pixels = field.field_input(grey)
        assert pixels.shape[0] == field.HEIGHT
        assert pixels.max() == pytest.approx(1.0) and pixels.min() == 0.0
        assert np.median(pixels) == 0.0  # paper is black


def test_uneven_lighting_and_a_rule_are_not_writing() -> None:
    grey = paper_with_bars().astype(np.float32)
    grey += np.linspace(-40, 30, grey.shape[1])[None, :]  # a lighting gradient
    grey[46:48, :] = 60  # a printed rule under the field, as long as the field
    prepared = field.prepare(np.clip(grey, 0, 255).astype(np.uint8))
    # The band is the bars' rows (10-40) with a margin, not the rule's.
    assert 0 < prepared.y0 < 10 and 40 < prepared.source_y(field.HEIGHT) < 50
    middle = prepared.pixels[8:24].max(axis=0)  # rows of the bars only: the light is gone
    assert np.count_nonzero(middle > 0.5) < 0.2 * middle.size


def test_input_columns_map_back_to_the_source() -> None:
    prepared = field.prepare(paper_with_bars(bars=(40, 120)))
    inked = np.flatnonzero(prepared.pixels.max(axis=0) > 0.5)
    first, last = inked.min(), inked.max()
    assert prepared.source_x(first) == pytest.approx(40, abs=2 * prepared.x_scale)
    assert prepared.source_x(last + 1) == pytest.approx(123, abs=2 * prepared.x_scale)


def test_a_blank_field_is_all_paper() -> None:
    grey = np.full((40, 100), 200, np.uint8)
    grey += np.random.default_rng(0).integers(0, 3, grey.shape, dtype=np.uint8)
    assert field.field_input(grey).max() < 0.5


def test_not_an_image_of_a_field_is_refused() -> None:
    with pytest.raises(ValueError, match="greyscale field"):
        field.field_input(np.zeros((1, 5), np.uint8))


def test_pad_batch_right_pads_to_a_multiple() -> None:
    batch, widths = field.pad_batch([np.ones((32, 10), np.float32), np.ones((32, 37), np.float32)])
    assert batch.shape == (2, 32, 48, 1)
    assert widths.tolist() == [10, 37]
    assert batch[0, :, 10:].max() == 0.0 and batch[1, :, :37].min() == 1.0


def test_a_broken_rule_above_the_writing_is_not_taken_for_it() -> None:
    grey = paper_with_bars(width=300, height=70, bars=(40, 100, 160, 220))
    grey[2:5, 10:290] = 40  # a rule across the top, broken every 30 pixels by a pattern
    grey[2:5, ::30] = 220
    prepared = field.prepare(grey)
    assert prepared.y0 < 10 < 40 < prepared.source_y(field.HEIGHT)  # the bars' rows
    assert prepared.pixels.shape[1] < 12 * field.HEIGHT


def test_no_input_is_wider_than_the_reader_takes() -> None:
    grey = np.full((12, 4000), 220, np.uint8)
    grey[2:10, 20:3980:40] = 30  # a strip of short strokes, hundreds of heights long
    prepared = field.prepare(grey)
    assert prepared.pixels.shape == (field.HEIGHT, field.MAX_ASPECT * field.HEIGHT)
    assert prepared.source_x(prepared.pixels.shape[1]) > 3940  # the last stroke, mapped back


def test_a_scans_grey_levels_and_the_same_levels_in_float_give_the_same_ink() -> None:
    # A scan (uint8) is closed in its own grey levels, a generated string in float: one
    # field, both ways, both polarities, must come out the same to the last bit.
    rng = np.random.default_rng(3)
    dark = np.clip(paper_with_bars() + rng.normal(0, 6, paper_with_bars().shape), 0, 255)
    for grey in (dark.astype(np.uint8), (255 - dark).astype(np.uint8)):
        as_float = grey.astype(np.float64)
        assert np.array_equal(field.ink_image(grey), field.ink_image(as_float))
        assert field.ink_image(grey).dtype == np.float32
        assert np.array_equal(field.prepare(grey).pixels, field.prepare(as_float).pixels)


def test_a_digit_that_fills_its_crop_is_read_whole() -> None:
    # A 6 as a ZIP-code or form box crops it: ink to the left edge, a bowl as wide as
    # the crop. Its rows reaching the edge are far shorter than a rule (1.5 heights).
    six = """
        ................
        .......###......
        .....#####......
        ....#####.......
        ...#####........
        ..#####.........
        .#####..........
        #####.....###...
        ####....######..
        ####...###..###.
        #####.###....##.
        ##############..
        .############...
        ..#########.....
        ....#####.......
        ................
    """
    ink = np.array([[c == "#" for c in row] for row in six.split()])
    prepared = field.prepare(np.where(ink, 30, 230).astype(np.uint8))
    assert prepared.y0 <= 1 and prepared.source_y(field.HEIGHT) >= 15  # the stem and the bowl
    assert prepared.x0 <= 0 and prepared.source_x(prepared.pixels.shape[1]) >= 15
