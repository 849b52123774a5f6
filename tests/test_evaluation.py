"""Metrics, McNemar's and Wilcoxon's paired tests and the PNG reports, on small arrays with
known answers."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from digitflow.evaluation import (
    CandidateEval,
    evaluate,
    expected_calibration_error,
    format_p,
    likelihood_test,
    mcnemar,
)
from digitflow.reports import confusion_matrix_png, misclassified_gallery_png


def one_hot_probs(predicted: list[int], confidence: float) -> np.ndarray:
    """Probabilities putting ``confidence`` on each predicted class, the rest spread evenly."""
    probs = np.full((len(predicted), 10), (1 - confidence) / 9)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_evaluate_counts_errors_confusion_precision_and_recall() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    predicted = [0, 1, 1, 1, 0]  # two mistakes: example 1 (0->1) and example 4 (2->0)
    metrics = evaluate(one_hot_probs(predicted, 0.9), labels)

    assert metrics.n == 5
    assert metrics.error_rate == pytest.approx(0.4)
    assert metrics.accuracy == pytest.approx(0.6)
    assert metrics.misclassified == [1, 4]
    confusion = np.array(metrics.confusion)
    assert confusion.shape == (10, 10)
    assert confusion[0, 0] == 1 and confusion[0, 1] == 1  # rows are true classes
    assert confusion[2, 0] == 1 and confusion.sum() == 5
    assert metrics.precision[:3] == pytest.approx([1 / 2, 2 / 3, 0.0])
    assert metrics.recall[:3] == pytest.approx([1 / 2, 1.0, 0.0])
    assert metrics.precision[5] == 0.0  # never predicted, never seen: 0, not NaN
    assert metrics.log_loss == pytest.approx(-(3 * math.log(0.9) + 2 * math.log(0.1 / 9)) / 5)


def test_metrics_serialise_to_json() -> None:
    metrics = evaluate(one_hot_probs([3, 4], 0.7), np.array([3, 5]))
    again = type(metrics).model_validate_json(metrics.model_dump_json())
    assert again == metrics


def test_log_loss_stays_finite_when_the_true_class_gets_zero() -> None:
    probs = np.zeros((1, 10))
    probs[0, 1] = 1.0
    metrics = evaluate(probs, np.array([0]))
    assert metrics.log_loss == pytest.approx(-math.log(1e-15))


def test_ece_is_zero_when_calibrated_and_the_gap_when_overconfident() -> None:
    labels = np.zeros(10, dtype=int)
    eight_right = [0] * 8 + [1] * 2
    assert expected_calibration_error(one_hot_probs(eight_right, 0.8), labels) == pytest.approx(0)
    half_right = [0] * 5 + [1] * 5
    overconfident = one_hot_probs(half_right, 0.99)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.49)
    assert evaluate(overconfident, labels).ece == pytest.approx(0.49)


def test_ece_weights_bins_by_their_share_of_examples() -> None:
    # Bin of 0.95: 2 examples, both right (gap 0.05). Bin of 0.55: 2 examples, none right.
    probs = np.vstack([one_hot_probs([0, 0], 0.95), one_hot_probs([1, 1], 0.55)])
    labels = np.zeros(4, dtype=int)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.05 + 0.5 * 0.55)


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        (np.zeros((3, 9)), np.zeros(3, dtype=int), "shape"),
        (np.zeros((3, 10)), np.zeros(2, dtype=int), "shape"),
        (np.zeros((1, 10)), np.array([10]), "0-9"),
        (np.zeros((0, 10)), np.zeros(0, dtype=int), "zero examples"),
        (np.full((1, 10), np.nan), np.array([1]), "NaN"),
    ],
)
def test_evaluate_rejects_bad_inputs(probs: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(probs, labels)


def paired(b: int, c: int, both_right: int = 50, both_wrong: int = 3) -> tuple[np.ndarray, ...]:
    """Correctness of A and B with b examples only A gets right and c only B gets right."""
    a = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    bb = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    return np.array(a), np.array(bb)


def test_mcnemar_exact_branch_matches_the_binomial_by_hand() -> None:
    result = mcnemar(*paired(1, 9))
    assert (result.b, result.c, result.method) == (1, 9, "exact")
    # Two-sided: 2 * P(X <= 1), X ~ Binomial(10, 1/2) = 2 * (1 + 10) / 1024.
    assert result.p_value == pytest.approx(22 / 1024)


def test_mcnemar_chi_square_branch_uses_continuity_correction() -> None:
    result = mcnemar(*paired(10, 30))
    assert result.method == "chi2"
    assert result.statistic == pytest.approx((20 - 1) ** 2 / 40)
    # Chi-square with one degree of freedom: P(X > s) = erfc(sqrt(s / 2)).
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))


def test_mcnemar_switches_to_chi_square_at_25_discordant_pairs() -> None:
    assert mcnemar(*paired(12, 12)).method == "exact"
    assert mcnemar(*paired(12, 13)).method == "chi2"


def test_mcnemar_without_discordant_pairs_is_p_one() -> None:
    result = mcnemar(*paired(0, 0))
    assert (result.b, result.c, result.p_value, result.method) == (0, 0, 1.0, "none")


def test_mcnemar_symmetric_counts_give_p_one() -> None:
    assert mcnemar(*paired(5, 5)).p_value == pytest.approx(1.0)


def test_mcnemar_rejects_unpaired_or_non_boolean_inputs() -> None:
    with pytest.raises(ValueError, match="equal in shape"):
        mcnemar(np.ones(3, dtype=bool), np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        mcnemar(np.ones(3), np.ones(3))


def test_the_likelihood_test_is_wilcoxons_one_sided_by_hand() -> None:
    champion = np.log(np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]))
    # Gains of 0.5, 1, 2, -0.1 and 3 nats; the last example unchanged, left out.
    tuned = champion + np.array([0.5, 1.0, 2.0, -0.1, 3.0, 0.0])
    result = likelihood_test(champion, tuned)
    assert (result.likelier, result.less_likely) == (4, 1)
    # The gains' signed ranks: 2, 3, 4, -1, 5. The positive ranks sum to 14 of 15, which 2
    # of the 2^5 equally likely sign patterns reach (14 and 15): p = 2/32.
    assert result.p_value == pytest.approx(2 / 32)
    # The other way round: every pattern but the one summing to 0 reaches 1.
    assert likelihood_test(tuned, champion).p_value == pytest.approx(31 / 32)
    assert likelihood_test(champion, champion).p_value == 1.0


def test_an_answer_a_model_cannot_give_is_the_least_likely() -> None:
    champion = np.array([-np.inf, -2.0, -3.0, -1.0, -np.inf])
    tuned = np.array([-5.0, -1.0, -2.0, -0.5, -np.inf])  # the last: neither can, left out
    result = likelihood_test(champion, tuned)
    assert (result.likelier, result.less_likely) == (4, 0)
    assert result.p_value == pytest.approx(1 / 16)
    assert likelihood_test(tuned, champion).p_value == pytest.approx(1.0)


def test_the_likelihood_test_rejects_unpaired_or_undefined_inputs() -> None:
    with pytest.raises(ValueError, match="equal in shape"):
        likelihood_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="finite or -inf"):
        likelihood_test(np.zeros(2), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="finite or -inf"):
        likelihood_test(np.array([np.inf, 0.0]), np.zeros(2))


def test_format_p() -> None:
    assert format_p(0.0031) == "0.003"
    assert format_p(2.1e-5) == "2.1e-05"


def test_candidate_eval_packs_correctness_losslessly() -> None:
    correct = np.random.default_rng(0).random(1001) > 0.02
    cand = CandidateEval.from_correct("run1", "m", correct, "v1", np.arange(1001))
    again = CandidateEval.model_validate_json(cand.model_dump_json())
    assert np.array_equal(again.correct, correct)
    assert again.error == pytest.approx(1 - correct.mean())
    assert len(cand.correct_bits) < 200  # 1001 booleans in ~170 characters


def test_candidate_eval_refuses_an_error_that_disagrees_with_its_bits() -> None:
    cand = CandidateEval.from_correct("r", "m", np.array([True, False]), "v", np.arange(2))
    with pytest.raises(ValueError, match="disagrees"):
        CandidateEval(**{**cand.model_dump(), "error": 0.0})


def decode(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG")
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_confusion_matrix_png_decodes_with_a_sane_size() -> None:
    matrix = np.diag(np.full(10, 980)) + 1
    image = decode(confusion_matrix_png(matrix))
    assert 300 <= image.width <= 1200 and 300 <= image.height <= 1200
    # Cells are coloured by count: the diagonal is darker than an off-diagonal cell.
    pixels = np.asarray(image.convert("L"))
    assert pixels[64 + 5, 64 + 5] < pixels[64 + 5, 64 + 44 + 5]


def test_gallery_png_shows_up_to_the_limit() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (70, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 70)
    small = decode(misclassified_gallery_png(images[:3], labels[:3], labels[:3], np.ones(3)))
    full = decode(misclassified_gallery_png(images, labels, labels, np.ones(70)))
    assert small.width >= 3 * 84 and small.height >= 84
    assert full.height >= 8 * 84 > small.height  # 64 shown: eight rows of eight
    assert full.height < 10 * 120
    empty = decode(misclassified_gallery_png(images[:0], labels[:0], labels[:0], np.ones(0)))
    assert empty.width > 0


def test_gallery_rejects_mismatched_inputs() -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    with pytest.raises(ValueError, match="differ in length"):
        misclassified_gallery_png(images, np.array([1]), np.array([1, 2]), np.ones(2))
    with pytest.raises(ValueError, match="uint8"):
        misclassified_gallery_png(np.zeros((2, 28, 28)), np.ones(2), np.ones(2), np.ones(2))
