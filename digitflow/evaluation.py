"""Metrics of a classifier on labelled digits, and paired tests between two models: McNemar's
on which examples each gets right, Wilcoxon's on how likely each finds the right answers.

Pure numpy/scipy: takes predicted probabilities and labels, returns JSON-ready records.
The PNG reports live in ``digitflow.reports``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

logger = logging.getLogger(__name__)

NUM_CLASSES = 10
ECE_BINS = 15
LOG_LOSS_EPS = 1e-15
# Below this many discordant pairs the chi-square approximation is poor: use the exact test.
EXACT_BELOW = 25
# A log-likelihood below any a model gives an answer it can give (a CTC reader's step
# probabilities are floored at 1e-30: about -69 a step): where it cannot give it at all.
_IMPOSSIBLE = -1e9


class Metrics(BaseModel):
    """What a model got right and wrong on ``n`` labelled examples."""

    n: int
    error_rate: float
    accuracy: float
    log_loss: float
    ece: float
    precision: list[float]
    recall: list[float]
    confusion: list[list[int]]
    misclassified: list[int]


class McNemarResult(BaseModel):
    """McNemar's test on paired correctness of models A and B on the same examples."""

    b: int
    c: int
    statistic: float | None
    p_value: float
    method: Literal["exact", "chi2", "none"]


class LikelihoodTest(BaseModel):
    """Whether model B finds the right answers likelier than model A, example by example."""

    likelier: int  # examples whose right answer B finds likelier than A does
    less_likely: int  # and less likely
    p_value: float  # one-sided: B likelier


def likelihood_test(log_a: Sequence[float], log_b: Sequence[float]) -> LikelihoodTest:
    """The one-sided Wilcoxon signed-rank test of B's log-likelihoods of the right answers
    minus A's, over the same examples: small where B finds the answers likelier, by more
    where it does than where it does not. Examples both find equally likely are left out
    (scipy's exact distribution for up to 50 others, its normal approximation beyond). An
    answer that a model cannot give at all (log-likelihood -inf: a CTC reader with too few
    steps for it) counts as less likely than any it can give."""
    a = np.asarray(log_a, dtype=np.float64)
    b = np.asarray(log_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"log-likelihoods must be 1-D and equal in shape: {a.shape} vs {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any() or (a == np.inf).any() or (b == np.inf).any():
        raise ValueError("log-likelihoods must be finite or -inf")
    a, b = np.maximum(a, _IMPOSSIBLE), np.maximum(b, _IMPOSSIBLE)
    gain = b - a
    gain = gain[gain != 0]
    likelier, less = int(np.count_nonzero(gain > 0)), int(np.count_nonzero(gain < 0))
    if gain.size == 0:
        return LikelihoodTest(likelier=0, less_likely=0, p_value=1.0)
    from scipy.stats import wilcoxon

    p = float(wilcoxon(gain, alternative="greater").pvalue)
    return LikelihoodTest(likelier=likelier, less_likely=less, p_value=min(p, 1.0))


def check_predictions(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``probs`` as float64 (n, 10) and ``labels`` as int64 (n,), or raise ValueError."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES:
        raise ValueError(f"probs must have shape (n, {NUM_CLASSES}), got {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {labels.shape}")
    if probs.shape[0] == 0:
        raise ValueError("cannot evaluate on zero examples")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers 0-9, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"labels must be 0-9, got values {labels.min()}..{labels.max()}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contain NaN or infinite values")
    return probs, labels.astype(np.int64)


def correct_mask(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boolean (n,) array: whether the top-scoring class of each example is its label."""
    probs, labels = check_predictions(probs, labels)
    return np.asarray(probs.argmax(axis=1) == labels)


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """10x10 counts; rows are true classes, columns predicted classes."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class, clipped to stay finite."""
    p_true = np.clip(probs[np.arange(len(labels)), labels], LOG_LOSS_EPS, 1.0)
    return float(-np.mean(np.log(p_true)))


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label ECE: the bin-weighted gap between confidence and accuracy (equal-width bins)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    # Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of 0 joins the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for i in range(bins):
        members = index == i
        if members.any():
            gap = abs(float(correct[members].mean()) - float(confidence[members].mean()))
            total += members.sum() / len(labels) * gap
    return float(total)


def _ratio(numerators: np.ndarray, denominators: np.ndarray) -> list[float]:
    """Element-wise ratio, 0.0 where the denominator is 0 (a class never seen or predicted)."""
    safe = np.where(denominators > 0, denominators, 1)
    return [float(v) for v in np.where(denominators > 0, numerators / safe, 0.0)]


def evaluate(probs: np.ndarray, labels: np.ndarray) -> Metrics:
    """All metrics of predicted probabilities ``probs`` (n, 10) against ``labels`` (n,)."""
    probs, labels = check_predictions(probs, labels)
    predicted = probs.argmax(axis=1)
    matrix = confusion_matrix(predicted, labels)
    hits = np.diag(matrix)
    wrong = np.flatnonzero(predicted != labels)
    n = len(labels)
    metrics = Metrics(
        n=n,
        error_rate=len(wrong) / n,
        accuracy=1.0 - len(wrong) / n,
        log_loss=log_loss(probs, labels),
        ece=expected_calibration_error(probs, labels),
        precision=_ratio(hits, matrix.sum(axis=0)),
        recall=_ratio(hits, matrix.sum(axis=1)),
        confusion=matrix.tolist(),
        misclassified=[int(i) for i in wrong],
    )
    logger.info("evaluated %d examples: error %.4f, ECE %.4f", n, metrics.error_rate, metrics.ece)
    return metrics


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """Two-sided McNemar test: exact binomial below 25 discordant pairs, else chi-square (cc)."""
    a = np.asarray(correct_a)
    b_arr = np.asarray(correct_b)
    if a.dtype != np.bool_ or b_arr.dtype != np.bool_:
        raise ValueError(f"correctness must be boolean arrays, got {a.dtype} and {b_arr.dtype}")
    if a.shape != b_arr.shape or a.ndim != 1:
        raise ValueError(
            f"correctness arrays must be 1-D and equal in shape: {a.shape} vs {b_arr.shape}"
        )
    b = int(np.count_nonzero(a & ~b_arr))
    c = int(np.count_nonzero(~a & b_arr))
    if b + c == 0:
        return McNemarResult(b=0, c=0, statistic=None, p_value=1.0, method="none")
    if b + c < EXACT_BELOW:
        from scipy.stats import binomtest

        p = float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
        return McNemarResult(b=b, c=c, statistic=None, p_value=min(p, 1.0), method="exact")
    from scipy.stats import chi2

    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    p = float(chi2.sf(statistic, df=1))
    return McNemarResult(b=b, c=c, statistic=statistic, p_value=p, method="chi2")


def format_p(p: float) -> str:
    """A p-value for people: three decimals, or two significant digits below 0.001."""
    if math.isnan(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def validation_digest(indices: np.ndarray) -> str:
    """A short fingerprint of which examples (by index) a model was validated on."""
    data = np.ascontiguousarray(np.asarray(indices, dtype=np.int64)).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


class CandidateEval(BaseModel):
    """A model's validation result: its error and per-example correctness, packed to bits."""

    training_run: str
    model_name: str
    dataset_version: str
    validation_digest: str
    n: int = Field(gt=0)
    error: float = Field(ge=0, le=1)
    correct_bits: str = Field(repr=False, description="base64 of numpy.packbits(correct)")
    # Per example, the log-likelihood of its right answer, where the gate weighs likelihoods
    # (readers on held-out corrections).
    log_likelihoods: list[float] | None = Field(default=None, repr=False)

    @classmethod
    def from_correct(
        cls,
        training_run: str,
        model_name: str,
        correct: np.ndarray,
        dataset_version: str,
        indices: np.ndarray,
    ) -> CandidateEval:
        """Build from a boolean correctness array over the validation examples ``indices``."""
        mask = np.asarray(correct, dtype=bool)
        if mask.shape != (len(indices),):
            raise ValueError(f"correct has shape {mask.shape}, indices {len(indices)} examples")
        digest = validation_digest(indices)
        return cls.from_mask(training_run, model_name, mask, dataset_version, digest)

    @classmethod
    def from_mask(
        cls, training_run: str, model_name: str, correct: np.ndarray, dataset_version: str,
        digest: str, log_likelihoods: np.ndarray | None = None,
    ) -> CandidateEval:  # fmt: skip
        """Build from correctness on examples that ``digest`` identifies (generated strings),
        and the log-likelihood of each one's right answer where it is known."""
        mask = np.asarray(correct, dtype=bool)
        return cls(
            training_run=training_run,
            model_name=model_name,
            dataset_version=dataset_version,
            validation_digest=digest,
            n=len(mask),
            error=1.0 - float(mask.mean()),
            correct_bits=base64.b64encode(np.packbits(mask).tobytes()).decode("ascii"),
            log_likelihoods=None if log_likelihoods is None else list(map(float, log_likelihoods)),
        )

    @property
    def id(self) -> str:
        """``training_run/model_name``."""
        return f"{self.training_run}/{self.model_name}"

    @property
    def correct(self) -> np.ndarray:
        """Boolean (n,) array: which validation examples the model got right."""
        packed = np.frombuffer(base64.b64decode(self.correct_bits), dtype=np.uint8)
        return np.unpackbits(packed, count=self.n).astype(bool)

    @model_validator(mode="after")
    def _error_matches_bits(self) -> CandidateEval:
        actual = 1.0 - float(self.correct.mean())
        if abs(actual - self.error) > 1e-9:
            raise ValueError(f"{self.id}: error {self.error} disagrees with its bits ({actual})")
        if self.log_likelihoods is not None and len(self.log_likelihoods) != self.n:
            raise ValueError(
                f"{self.id}: {len(self.log_likelihoods)} log-likelihoods for {self.n} examples"
            )
        return self
