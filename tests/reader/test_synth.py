"""Generated strings: labels, determinism, variety, and what a training batch holds."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from digitflow.reader import field, hands, synth
from digitflow.reader.candidate import string_set
from digitflow.reader.strings import GROUP, StringBatches, fixed_set
from digitflow.reader.synth import Digits


def test_a_field_is_a_dark_on_light_scan_of_its_digits(digits: Digits) -> None:
    rng = np.random.default_rng(0)
    grey, text = synth.make_field(digits, digits.by_label(), rng, "90210")
    assert text == "90210"
    assert grey.dtype == np.uint8 and grey.ndim == 2
    assert field.dark_ink(grey)
    assert 20 <= grey.shape[0] <= 110 and grey.shape[1] > grey.shape[0]


def test_random_texts_are_digits_of_every_length(digits: Digits) -> None:
    rng = np.random.default_rng(1)
    texts = [synth.random_text(rng) for _ in range(2000)]
    assert all(t.isdigit() for t in texts)
    assert {len(t) for t in texts} == set(range(1, synth.MAX_DIGITS + 1))
    assert synth.random_text(rng, 7).__len__() == 7


def test_the_same_seed_makes_the_same_set(digits: Digits) -> None:
    a, b = fixed_set(digits, 5, seed=3), fixed_set(digits, 5, seed=3)
    assert a.texts == b.texts
    for x, y in zip(a.fields, b.fields, strict=True):
        np.testing.assert_array_equal(x.pixels, y.pixels)
    assert fixed_set(digits, 5, seed=4).texts != a.texts
    # A set's first strings are the smaller set of that seed (the monitor's strings are
    # the validation strings' first).
    longer = fixed_set(digits, 8, seed=3)
    assert longer.texts[:5] == a.texts
    for x, y in zip(a.fields, longer.fields[:5], strict=True):
        np.testing.assert_array_equal(x.pixels, y.pixels)


def test_a_string_set_is_written_once_a_process_and_only_for_the_same_images(
    digits: Digits,
) -> None:
    indices = np.arange(len(digits.labels))
    first = string_set(digits, indices, 6, seed=21)
    assert string_set(digits, indices, 6, seed=21) is first
    with pytest.raises(ValueError, match="read-only"):
        first.strings.fields[0].pixels[0, 0] = 1.0
    # Other images at the same indices (another dataset version): another set, and another
    # digest, as readings of one are not readings of the other.
    other = string_set(Digits(digits.images[::-1].copy(), digits.labels[::-1].copy()),
                       indices, 6, seed=21)  # fmt: skip
    assert other is not first and other.digest != first.digest
    assert not np.array_equal(other.strings.fields[0].pixels, first.strings.fields[0].pixels)
    assert string_set(digits, indices, 6, seed=22).strings.texts != first.strings.texts


def test_a_string_sets_digest_is_what_its_strings_are(digits: Digits) -> None:
    """Written again, a set has its digest again; one pixel or one text else, another."""
    from digitflow.reader import candidate
    from digitflow.reader.strings import LabelledFields

    indices = np.arange(len(digits.labels))
    first = string_set(digits, indices, 6, seed=23)
    candidate._WRITTEN.clear()
    again = string_set(digits, indices, 6, seed=23)
    assert again is not first and again.digest == first.digest
    fields, texts = list(first.strings.fields), list(first.strings.texts)
    assert candidate._fingerprint(LabelledFields(fields, texts)) == first.digest
    touched = fields[3].pixels.copy()
    touched[5, 5] += 0.01
    changed = [*fields[:3], replace(fields[3], pixels=touched), *fields[4:]]
    assert candidate._fingerprint(LabelledFields(changed, texts)) != first.digest
    retold = [*texts[:5], texts[5] + "1"]
    assert candidate._fingerprint(LabelledFields(fields, retold)) != first.digest


def test_a_batch_holds_inputs_and_ctc_labels(digits: Digits) -> None:
    source = StringBatches(digits, batch_size=8, seed=0)
    x, y = source.batch(epoch=0, index=0)
    assert x.shape[0] == 8 and x.shape[1:2] == (field.HEIGHT,) and x.shape[3] == 1
    assert x.shape[2] <= source.max_width and x.min() >= 0.0 and x.max() <= 1.0
    assert y.shape == (8, synth.MAX_DIGITS)
    for row in y:  # digits as 1..10, then the blank (0) as padding
        used = row[row > 0]
        assert used.size >= 1 and np.all(row[used.size :] == 0) and used.max() <= 10
    again, _ = source.batch(epoch=0, index=0)
    np.testing.assert_array_equal(x, again)
    other, _ = source.batch(epoch=1, index=0)
    assert other.shape != x.shape or not np.array_equal(other, x)


def _padding(x: np.ndarray) -> float:
    """The share of a batch that is padding: columns right of each input's last ink."""
    inked = (x[:, :, :, 0] > 0).any(axis=1)  # (n, W)
    last = x.shape[2] - np.argmax(inked[:, ::-1], axis=1)
    return float(1.0 - last.mean() / x.shape[2])


def test_a_source_that_goes_on_writes_the_strings_of_later_epochs(digits: Digits) -> None:
    """A reader that goes on from an earlier run's weights sees strings that run did not."""
    later = StringBatches(digits, batch_size=4, seed=0, first_epoch=3)
    from_start = StringBatches(digits, batch_size=4, seed=0)
    for a, b in zip(later.batch(0, 1), from_start.batch(3, 1), strict=True):
        np.testing.assert_array_equal(a, b)
    first, _ = from_start.batch(0, 1)
    assert first.shape != later.batch(0, 1)[0].shape or not np.array_equal(
        first, later.batch(0, 1)[0]
    )


def test_a_batch_holds_strings_about_as_wide_as_each_other(digits: Digits) -> None:
    """A batch costs as much as its widest input: padding is cut by writing batches
    together and cutting them by width (batches of one length each were 38 % padding)."""
    source = StringBatches(digits, batch_size=32, seed=2)
    batches = [source.batch(0, index)[0] for index in range(2 * GROUP)]
    widths = {x.shape[2] for x in batches}
    assert len(widths) >= GROUP // 2  # narrow batches and wide ones, not all at the cap
    assert np.mean([_padding(x) for x in batches]) < 0.2
    # Labels still go with their inputs: the more digits, the wider the ink.
    lengths, extents = [], []
    for index in range(2 * GROUP):
        x, y = source.batch(0, index)
        inked = (x[:, :, :, 0] > 0).any(axis=1)
        extents += list(x.shape[2] - np.argmax(inked[:, ::-1], axis=1))
        lengths += list((y > 0).sum(axis=1))
    assert np.corrcoef(lengths, extents)[0, 1] > 0.5  # about 0 if they were mixed up


def test_a_batch_is_the_same_in_any_order_it_is_asked_for(digits: Digits) -> None:
    source = StringBatches(digits, batch_size=4, seed=6)
    late, _ = source.batch(0, GROUP + 1)
    early, early_labels = source.batch(0, 2)
    fresh = StringBatches(digits, batch_size=4, seed=6)
    np.testing.assert_array_equal(fresh.batch(0, 2)[0], early)
    np.testing.assert_array_equal(fresh.batch(0, 2)[1], early_labels)
    np.testing.assert_array_equal(source.batch(0, GROUP + 1)[0], late)


def test_the_first_batch_leaves_keras_the_width_free(digits: Digits) -> None:
    """Keras takes its input spec from the first two batches: they must differ in width."""
    from digitflow.reader.training import EpochWriter, _keras_batches

    for seed in range(8):
        writer = EpochWriter(StringBatches(digits, batch_size=4, seed=seed), 3, processes=1)
        batches = _keras_batches(writer, epochs=2)
        first, second = batches[0][0], batches[1][0]
        assert first.shape[2] != second.shape[2]
        assert all(first.shape[2] > batches[k][0].shape[2] for k in range(1, 6))


def test_a_bent_digit_moves_its_strokes_no_further_than_the_bend(digits: Digits) -> None:
    rng = np.random.default_rng(3)
    image = digits.images[0].astype(np.float32)
    bent = hands.bend(image, 2.0, rng)
    assert bent.shape == image.shape and not np.array_equal(bent, image)
    assert 0.8 < bent.sum() / image.sum() < 1.2  # the ink is moved, not lost or doubled

    def centre(a: np.ndarray) -> np.ndarray:
        return np.array(np.nonzero(a > 100)).mean(axis=1)

    assert np.abs(centre(bent) - centre(image)).max() <= 2.0
    assert np.array_equal(hands.bend(image, 0.0, rng), image)


def test_a_slash_is_written_only_before_a_dash_or_an_equals_sign() -> None:
    """Alone at the end of a string a slash is a 1: the reader must not learn to drop it."""
    rng = np.random.default_rng(5)
    tails = [synth._marks_for("123456", rng)[2] for _ in range(3000)]
    slashed = [t for t in tails if "/" in t]
    assert slashed and all(t in ("/-", "/=") for t in slashed)


def test_some_crops_are_tight_and_none_cuts_deep_into_the_writing() -> None:
    d = 40.0
    canvas = np.zeros((120, 300), np.float32)
    canvas[40:80, 30:270] = 1.0  # the writing: rows 40-79, columns 30-269
    rng = np.random.default_rng(6)
    crops = [synth._crop_ink(canvas, rng, d) for _ in range(600)]
    ink_rows = np.array([int((out.max(axis=1) > 0.5).sum()) for out in crops])
    paper_rows = np.array([out.shape[0] for out in crops]) - ink_rows
    assert 0.1 < np.mean(ink_rows < 40) < 0.5  # a share of the crops cut into the writing
    assert ink_rows.min() >= 40 - (0.15 + 0.1) * d - 1  # by a quarter of a digit at most
    assert np.mean(paper_rows <= 0.05 * d) > 0.1  # and some more leave no margin
    assert np.mean(paper_rows >= 0.2 * d) > 0.4  # most leave the margins they did


def test_digits_run_two_or_three_times_more_often_than_by_chance() -> None:
    """Runs (111, 1000) must be learnt: CTC reads a run only with a blank between each."""
    rng = np.random.default_rng(7)
    texts = [synth.random_text(rng, 6) for _ in range(4000)]
    ones = np.mean(["111" in t for t in texts])
    assert ones > 0.02  # by chance, four places in a thousand


def test_a_slashed_one_leans_by_its_lean(digits: Digits) -> None:
    """Half its height wider, less what the writer's own slant and the turn take: over
    writers, since one leaning back has some of the lean cancelled by it."""
    one = digits.images[int(np.flatnonzero(digits.labels == 1)[0])]
    rng = np.random.default_rng(0)
    widening = []
    for k in range(50):
        style = hands.random_style(rng)
        upright = hands.warp(one, style, np.random.default_rng(k))
        leaning = hands.warp(one, style, np.random.default_rng(k), lean=0.5)
        assert abs(leaning.shape[0] - upright.shape[0]) <= 0.1 * upright.shape[0]
        widening.append((leaning.shape[1] - upright.shape[1]) / upright.shape[0])
    assert 0.3 < np.median(widening) < 0.7


def _ink(image: np.ndarray) -> np.ndarray:
    """(row, column) of every inked pixel."""
    return np.argwhere(image > 100)


def test_a_drawn_nine_drops_its_stem_from_the_bottom_or_left_of_its_loop(digits: Digits) -> None:
    """MNIST's 9s drop their stems from the right of the loop: the drawn ones do not."""
    style = hands.random_style(np.random.default_rng(0))
    nine = digits.images[int(np.flatnonzero(digits.labels == 9)[0])]
    rng = np.random.default_rng(11)

    def stem_right_of_loop(image: np.ndarray) -> float:
        ink = _ink(image)
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        loop = ink[ink[:, 0] <= top + 0.4 * (bottom - top)]
        foot = ink[ink[:, 0] >= top + 0.75 * (bottom - top)]
        # Where the stem's foot stands, in shares of the loop's width from its middle.
        left, right = loop[:, 1].min(), loop[:, 1].max()
        return float((foot[:, 1].mean() - (left + right) / 2) / max(right - left, 1))

    drawn = [hands.restyle(nine, 9, replace(style, drawn_nines=True), rng) for _ in range(200)]
    assert all(d.shape == (40, 40) and d.max() > 200 for d in drawn)
    assert np.mean([stem_right_of_loop(d) for d in drawn]) < 0.0
    mnist = digits.images[digits.labels == 9][:200]
    assert np.mean([stem_right_of_loop(d) for d in mnist]) > 0.1


def test_most_drawn_nines_end_in_a_tail_curled_out_to_the_left() -> None:
    """As the real cheques' 9s that a reader read as 8: a loop as wide as most of the
    digit is high, and below it a stem whose foot curls out to the left (a tick to a curl
    back up), its lowest quarter spread over a third of the digit's height or more."""
    rng = np.random.default_rng(17)
    feet, loops = [], []
    for _ in range(400):
        ink = _ink(hands._drawn_nine(rng))
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        height = bottom - top
        feet.append(np.ptp(ink[ink[:, 0] >= top + 0.75 * height][:, 1]) / height)
        loops.append(np.ptp(ink[ink[:, 0] <= top + 0.45 * height][:, 1]) / height)
    assert np.mean(np.array(feet) > 0.3) > 0.5
    assert np.percentile(loops, 10) > 0.5


def test_a_drawn_four_is_open_at_the_top(digits: Digits) -> None:
    """Only its left stroke reaches the top: the right one starts lower down."""
    style = replace(hands.random_style(np.random.default_rng(0)), open_fours=True)
    four = digits.images[int(np.flatnonzero(digits.labels == 4)[0])]
    rng = np.random.default_rng(12)
    reach = []  # how far right the top tenth's ink goes, in shares of the width
    for _ in range(200):
        ink = _ink(hands.restyle(four, 4, style, rng))
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        left, right = ink[:, 1].min(), ink[:, 1].max()
        crown = ink[ink[:, 0] <= top + 0.1 * (bottom - top)]
        reach.append((crown[:, 1].max() - left) / (right - left))
    # Now and then (4 in 1,000) a left stroke that starts far right, in a thick pen, does.
    assert np.mean(np.array(reach) >= 0.6) < 0.03


def test_a_curled_two_is_its_digit_with_a_curl_at_the_top_left(digits: Digits) -> None:
    style = replace(hands.random_style(np.random.default_rng(0)), looped_twos=False,
                    drawn_twos=False)  # fmt: skip
    twos = digits.images[digits.labels == 2][:50]
    curls = 0
    for k, two in enumerate(twos):
        plain = hands.restyle(two, 2, replace(style, curled_twos=False), np.random.default_rng(k))
        curled = hands.restyle(two, 2, replace(style, curled_twos=True), np.random.default_rng(k))
        added = np.argwhere(curled.astype(np.int16) - plain > 60)
        if not len(added):  # a small curl over a thick start adds no ink (3 in 10)
            continue
        curls += 1
        ink = _ink(plain)
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        upper = ink[ink[:, 0] <= top + 0.4 * (bottom - top)]
        start = upper[np.argmin(upper[:, 1])]  # where the pen starts a 2: its top left
        assert np.abs(added - start).max() <= 10  # the curl hangs on it, a few pixels wide
    assert curls >= len(twos) // 2


def test_closing_marks_range_from_small_raised_ticks_to_long_strokes_below_the_middle() -> None:
    """Many hands close an amount with a short ``=`` or ``-`` up by the digits' tops (read
    as a 2 or a 1 by a reader that saw only long marks at mid-height)."""
    rng = np.random.default_rng(11)
    style = hands.random_style(rng)
    d = style.height
    highest, lowest, lengths, bars = [], [], [], []
    for kind in "-=" * 300:
        img, top = synth._mark(kind, style, rng)
        rows = np.flatnonzero(img.max(axis=1) > 0.5)
        cols = np.flatnonzero(img.max(axis=0) > 0.5)
        highest.append(top + rows[0] / d)  # in digit heights below the digits' top line
        lowest.append(top + rows[-1] / d)
        lengths.append((cols[-1] - cols[0] + 1) / d)
        if kind == "=":
            bars.append(cv2.connectedComponents((img > 0.5).astype(np.uint8))[0] - 1)
    highest_, lengths_ = np.array(highest), np.array(lengths)
    assert np.mean(highest_ < 0.15) > 0.15 and np.mean(highest_ > 0.3) > 0.15
    assert highest_.min() > -0.2 and max(lowest) < 1.05  # within the digits' band
    # Short ones: a tenth of them with a fine pen, fewer with a thick one (7 % at least).
    assert np.mean(lengths_ < 0.4) > 0.04 and lengths_.max() > 1.2
    assert np.mean(np.array(bars) == 2) > 0.9  # an equals sign's bars stand apart


def test_a_drawn_seven_sweeps_its_stem_left_and_a_crossed_one_is_crossed_at_its_middle(
    digits: Digits,
) -> None:
    """The stem leaves the top bar's right end and stands left of it, as a 2's diagonal;
    a crossed one's middle rows run wider than a stem (the + that is read as a 1)."""
    seven = digits.images[int(np.flatnonzero(digits.labels == 7)[0])]
    rng = np.random.default_rng(13)
    for barred in (False, True):
        style = replace(hands.random_style(rng), drawn_sevens=True, barred_sevens=barred)
        crossed = []
        for _ in range(100):
            image = hands.restyle(seven, 7, style, rng)
            assert image.shape == (40, 40) and image.max() > 200
            ink = _ink(image)
            top, bottom = ink[:, 0].min(), ink[:, 0].max()
            height = bottom - top
            crown = ink[ink[:, 0] <= top + 0.1 * height]
            foot = ink[ink[:, 0] >= bottom - 0.05 * height]
            assert foot[:, 1].mean() < crown[:, 1].max() - 0.2 * height
            middle = ink[np.abs(ink[:, 0] - (top + 0.5 * height)) <= 0.12 * height]
            widest = max(np.ptp(middle[middle[:, 0] == r][:, 1]) for r in np.unique(middle[:, 0]))
            crossed.append(widest >= 0.34 * height)
        # Every crossed one; now and then a bowed stem runs as wide (1 in 2,000).
        assert all(crossed) if barred else np.mean(crossed) < 0.03


def test_a_drawn_five_is_a_check_mark_with_its_bar_on_top(digits: Digits) -> None:
    """Its foot is a point on the left and its lower half keeps to the left: no bowl
    bulges out to the right below the bar, as an MNIST 5's does (read as a 1 or a 4)."""
    fives = digits.images[digits.labels == 5][:100]
    rng = np.random.default_rng(14)
    style = replace(hands.random_style(rng), drawn_fives=True)

    def lower_right(image: np.ndarray) -> float:  # share of the lower half's ink
        ink = _ink(image)
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        left, right = ink[:, 1].min(), ink[:, 1].max()
        low = ink[ink[:, 0] >= top + 0.5 * (bottom - top)]
        return float(np.mean(low[:, 1] > left + 0.55 * (right - left)))

    bulging = []
    for five in fives:
        image = hands.restyle(five, 5, style, rng)
        assert image.shape == (40, 40) and image.max() > 200
        ink = _ink(image)
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        left, right = ink[:, 1].min(), ink[:, 1].max()
        foot = ink[ink[:, 0] >= bottom - 0.05 * (bottom - top)]
        assert foot[:, 1].mean() < left + 0.5 * (right - left)
        bulging.append(lower_right(image) >= 0.25)
    assert np.mean(bulging) < 0.03  # a sweep that bows out to the right, now and then
    plain = [lower_right(hands.restyle(f, 5, replace(style, drawn_fives=False), rng))
             for f in fives]  # fmt: skip
    assert np.median(plain) > 0.3


def test_drawn_fives_are_as_narrow_as_the_cheques_check_mark_fives() -> None:
    """The check-mark 5s that a reader read as 1 are narrower than they are high, their
    first stroke short: most drawn ones are too, some as wide as high."""
    rng = np.random.default_rng(18)
    shapes = []
    for _ in range(400):
        ink = _ink(hands._drawn_five(rng))
        shapes.append(np.ptp(ink[:, 1]) / np.ptp(ink[:, 0]))
    assert 0.65 < np.median(shapes) < 0.9
    assert np.percentile(shapes, 90) > 0.9


def _upper_holes(image: np.ndarray) -> int:
    """Holes in the ink (not pinholes) whose middle is in the digit's upper 60 %."""
    ink = image > 100
    count, labels = cv2.connectedComponents((~ink).astype(np.uint8), connectivity=4)
    outside = set(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    rows = np.flatnonzero(ink.any(axis=1))
    holes = [np.argwhere(labels == k) for k in range(1, count) if k not in outside]
    middles = [hole[:, 0].mean() for hole in holes if len(hole) >= 3]
    return sum((m - rows[0]) / max(rows[-1] - rows[0], 1) < 0.6 for m in middles)


def test_a_looped_one_is_a_cursive_l_with_its_loop_up_top(digits: Digits) -> None:
    """A loop (a hole in the ink) in its upper part, on a digit taller than wide: the 1s
    read as 8 or 4 on cheques; an MNIST 1 has none there."""
    ones = digits.images[digits.labels == 1][:100]
    rng = np.random.default_rng(15)
    style = replace(hands.random_style(rng), looped_ones=True)

    looped = [hands.restyle(one, 1, style, rng) for one in ones]
    # About a third: the rest drawn too small for the loop to stay open, as in many scans.
    assert np.mean([_upper_holes(image) > 0 for image in looped]) > 0.2
    for image in looped:
        ink = _ink(image)
        assert np.ptp(ink[:, 1]) < np.ptp(ink[:, 0])
    plain = [hands.restyle(one, 1, replace(style, looped_ones=False), rng) for one in ones]
    assert np.mean([_upper_holes(image) > 0 for image in plain]) < 0.05


def test_a_drawn_two_is_a_closed_loop_on_a_foot(digits: Digits) -> None:
    """A loop on top, like a 9's (the 2s read as 9 on cheques), and what tells it from a 9:
    a foot as wide as most of the digit. MNIST's 9s have the loop and not the foot; its
    2s the foot and seldom the loop."""
    rng = np.random.default_rng(17)
    style = hands.random_style(rng)

    def foot(image: np.ndarray) -> float:  # the bottom tenth's ink, in shares of the width
        ink = _ink(image)
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        low = ink[ink[:, 0] >= bottom - 0.1 * (bottom - top)]
        return float(np.ptp(low[:, 1]) / max(np.ptp(ink[:, 1]), 1))

    two = digits.images[int(np.flatnonzero(digits.labels == 2)[0])]
    drawn = [
        hands.restyle(two, 2, replace(style, drawn_twos=True, looped_twos=k % 2 == 1), rng)
        for k in range(200)
    ]
    assert np.mean([_upper_holes(image) > 0 for image in drawn]) > 0.8
    assert np.mean([foot(image) for image in drawn]) > 0.8
    nines = digits.images[digits.labels == 9][:200]
    assert np.mean([_upper_holes(image) > 0 for image in nines]) > 0.5
    assert np.mean([foot(image) for image in nines]) < 0.4
    plain = replace(style, drawn_twos=False, looped_twos=False, curled_twos=False)
    twos = [hands.restyle(t, 2, plain, rng) for t in digits.images[digits.labels == 2][:200]]
    assert np.mean([_upper_holes(image) > 0 for image in twos]) < 0.1


def test_some_writers_flag_their_1s_steeply_almost_down_the_stem() -> None:
    """A steep flag is almost as long as the stem (a Λ, as the 1s of the real check amounts
    that a reader read as "11" are written); the longest other flag (0.65 of the height at
    70 degrees, and the pen) ends above 0.7 of it. Of the writers who flag their 1s, about
    four in ten flag them so."""
    rng = np.random.default_rng(16)
    height, top = 40, 10

    def reach(steep: bool) -> float:
        image = np.zeros((64, 64), np.uint8)
        hands._flag(image, 40, top, height, 2, steep, rng)
        rows = np.flatnonzero(image.max(axis=1) > 100)
        return (rows[-1] - top) / height

    steep = np.array([reach(True) for _ in range(500)])
    assert steep.min() > 0.4 and np.median(steep) > 0.6 and steep.max() < 1.0
    assert max(reach(False) for _ in range(500)) < 0.7
    flaggers = [w for w in (hands.random_style(rng) for _ in range(2000)) if w.flag_ones]
    assert 0.3 < np.mean([w.steep_flags for w in flaggers]) < 0.5


def test_two_1s_are_never_written_over_each_other() -> None:
    """Two 1s overlapping look like one 1 with a steep flag: a writer who crowds digits
    still leaves two 1s apart, by a twentieth of their height at least."""
    rng = np.random.default_rng(12)
    style = replace(hands.random_style(rng), height=40.0, spacing=-0.15, spacing_jitter=0.0,
                    drift=0.0)  # fmt: skip
    pieces = [(_piece(24), 0.0, 4)] + [(_piece(8, pad=2), 0.0, 1)] * 2
    placed = synth._place(pieces, style, rng)
    assert _ink_gap(placed, pieces, 0) == -4  # a 1 beside another digit still overlaps
    assert _ink_gap(placed, pieces, 1) == 2  # 0.05 of 40
    sevens = [pieces[0]] + [(_piece(8, pad=2), 0.0, 7)] * 2
    assert _ink_gap(synth._place(sevens, style, rng), sevens, 1) < 0  # any other two do


def test_a_1_with_a_steep_flag_stands_upright_or_leans_back() -> None:
    """So that flag and stem make a Λ: a steep flag on a 1 leaning right is a stroke like a
    slashed 1 beside a stroke like a back-slashed one, which a reader taught so read as
    "11". Slashed 1s still lean like a slash, other digits as the writer slants."""
    rng = np.random.default_rng(13)
    style = replace(hands.random_style(rng), slant=0.3, flag_ones=True, steep_flags=True,
                    slashed_ones=True)  # fmt: skip
    shears = [style.slant + synth._lean(1, style, rng) for _ in range(300)]
    assert min(shears) >= -0.3 - 1e-9 and max(shears) <= 0.05 and np.mean(shears) < -0.05
    slashed = [synth._lean(1, replace(style, steep_flags=False), rng) for _ in range(300)]
    assert min(slashed) >= 0.2 and max(slashed) <= 0.6
    plain = replace(style, flag_ones=False, slashed_ones=False)
    assert synth._lean(1, plain, rng) == 0.0 and synth._lean(7, style, rng) == 0.0
    stem = np.zeros((28, 28), np.uint8)
    stem[4:24, 13:15] = 255
    tops = []
    for _ in range(100):
        ink = np.argwhere(hands.warp(stem, style, rng, synth._lean(1, style, rng)) > 0.5)
        top, bottom = ink[:, 0].min(), ink[:, 0].max()
        tops.append(ink[ink[:, 0] == top][:, 1].mean() - ink[ink[:, 0] == bottom][:, 1].mean())
    assert np.mean(np.array(tops) <= 2) > 0.9  # its top above or left of its foot


def _piece(width: int, height: int = 40, pad: int = 6) -> np.ndarray:
    """A piece as ``warp`` gives one: ink in the middle, empty columns round it."""
    ink = np.zeros((height, width + 2 * pad), np.float32)
    ink[:, pad : pad + width] = 1.0
    return ink


def _columns(ink: np.ndarray) -> tuple[int, int]:
    cols = np.flatnonzero(ink.max(axis=0) > 0.2)
    return int(cols[0]), int(cols[-1])


def _ink_gap(placed: list[tuple[int, int]], pieces: list, k: int) -> int:
    """Columns of paper between the ink of piece k and of piece k + 1 (negative: overlap)."""
    right = placed[k][0] + _columns(pieces[k][0])[1]
    return placed[k + 1][0] + _columns(pieces[k + 1][0])[0] - right - 1


def test_digits_are_spaced_by_their_ink_as_writers_crowd_them() -> None:
    """A writer who crowds digits makes them touch, not the empty corners of their boxes:
    on real check amounts about four pairs in ten touch or overlap."""
    rng = np.random.default_rng(8)
    style = replace(hands.random_style(rng), height=40.0, spacing=-0.1, spacing_jitter=0.0,
                    drift=0.0)  # fmt: skip
    pieces = [(_piece(24), 0.0, 0), (_piece(24), 0.0, 0)]
    assert _ink_gap(synth._place(pieces, style, rng), pieces, 0) == -4  # a tenth of 40
    wide = replace(style, spacing=0.3)
    assert _ink_gap(synth._place(pieces, wide, rng), pieces, 0) == 12


def test_a_narrow_digit_is_overlapped_by_half_at_most_and_a_mark_not_at_all() -> None:
    rng = np.random.default_rng(9)
    style = replace(hands.random_style(rng), height=40.0, spacing=-0.4, spacing_jitter=0.0,
                    drift=0.0)  # fmt: skip
    one = [(_piece(24), 0.0, 0), (_piece(8), 0.0, 1)]
    assert _ink_gap(synth._place(one, style, rng), one, 0) == -4  # half the 1's 8 columns
    dot = [(_piece(24), 0.0, 0), (_piece(6, height=6, pad=2), 0.0, None)]
    assert _ink_gap(synth._place(dot, style, rng), dot, 0) >= 0


def test_generated_strings_touch_about_as_often_as_real_ones(digits: Digits) -> None:
    """Over many writers, as on the real check amounts (38 % of neighbouring digits
    touching or overlapping, a median gap of 0.06 of their height): not the 3 % that
    spacing the digits' boxes gave."""
    rng = np.random.default_rng(10)
    gaps = []
    for _ in range(400):
        style = hands.random_style(rng)
        picked = rng.integers(0, len(digits.images), 4)
        pieces = [(hands.warp(digits.images[k], style, rng), 0.0, int(digits.labels[k]))
                  for k in picked]  # fmt: skip
        placed = synth._place(pieces, style, rng)
        gaps += [_ink_gap(placed, pieces, k) / style.height for k in range(3)]
    assert 0.25 < np.mean(np.array(gaps) <= 0) < 0.5
    assert -0.05 < np.median(gaps) < 0.2


def test_some_writers_take_their_4s_7s_and_9s_below_the_line() -> None:
    """As on the real check amounts, where a tenth of those digits stand 1.25-1.42 times
    the field's digit height, their feet lower: taller, reaching below the line."""
    rng = np.random.default_rng(11)
    writers = [hands.random_style(rng) for _ in range(2000)]
    assert 0.3 < np.mean([w.descenders > 0 for w in writers]) < 0.5
    style = replace(writers[0], descenders=1.0)
    ink = np.ones((40, 24), np.float32)
    for label in (4, 7, 9):
        taller, drop = synth.descend(ink, label, style, rng)
        assert 1.15 * 40 - 1 <= taller.shape[0] <= 1.45 * 40 + 1
        assert 0.2 * (taller.shape[0] - 40) <= drop <= 0.8 * (taller.shape[0] - 40)
        assert taller.shape[1] == 24 and taller.max() <= 1.0
    ones = [synth.descend(ink, 1, style, rng)[1] > 0 for _ in range(400)]
    assert 0.35 < np.mean(ones) < 0.65  # a 1 half as often
    kept = [synth.descend(ink, label, style, rng) for label in (0, 2, 3, 5, 6, 8)]
    kept.append(synth.descend(ink, 4, replace(style, descenders=0.0), rng))
    assert all(same is ink and drop == 0.0 for same, drop in kept)


def test_each_hand_mnist_hardly_has_is_written_by_a_third_to_a_half_of_the_writers() -> None:
    """Cheque writers write crossed and drawn 7s, drawn 2s, 4s, 5s and 9s more often than
    MNIST's shapes: each is a writer's in three to one in two."""
    rng = np.random.default_rng(19)
    writers = [hands.random_style(rng) for _ in range(2000)]
    for hand in ("barred_sevens", "drawn_sevens", "drawn_fives", "drawn_nines", "drawn_twos",
                 "open_fours"):  # fmt: skip
        assert 0.3 < np.mean([getattr(w, hand) for w in writers]) < 0.6, hand
