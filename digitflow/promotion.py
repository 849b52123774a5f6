"""The promotion gate: which candidate, if any, replaces the champion, and why.

Pure logic over validation results. Every candidate and the champion must have been
evaluated on the same validation examples, so that the paired tests are meaningful:
McNemar's on which examples each gets right, or, for readers tuned on corrections, on
the held-out corrections, Wilcoxon's on how likely each finds their answers.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from digitflow.errors import DigitflowError
from digitflow.evaluation import CandidateEval, format_p, likelihood_test, mcnemar

logger = logging.getLogger(__name__)

__all__ = [
    "CandidateEval",
    "CandidateRow",
    "Decision",
    "GateConfig",
    "ReaderGateConfig",
    "ValidationMismatch",
    "decide",
    "decide_adapted",
]

# A line reader's floor: the share of validation strings it may misread (any digit).
READER_MAX_ERROR = 0.25
# Errors are ratios of counts over the same n; this only absorbs float rounding.
TOLERANCE = 1e-12
# The gate's paired tests: on which examples each model gets right; on how likely each
# finds their right answers.
MCNEMAR = "McNemar"
WILCOXON = "Wilcoxon"


class ValidationMismatch(DigitflowError):
    """Models were evaluated on different validation examples and cannot be compared."""


class GateConfig(BaseModel):
    """Thresholds of the promotion gate."""

    max_error: float = Field(
        default=0.05, ge=0, le=1,
        description="Absolute validation-error floor a candidate must clear.",
    )  # fmt: skip
    min_margin: float = Field(
        default=0.001, ge=0, le=1,
        description="Minimum validation-error improvement over the champion.",
    )  # fmt: skip
    alpha: float = Field(
        default=0.05, gt=0, le=1,
        description="Significance level of the paired test: McNemar's (for readers tuned on "
        "corrections, on the held-out ones: Wilcoxon's on the answers' likelihoods).",
    )  # fmt: skip


class ReaderGateConfig(GateConfig):
    """Thresholds of the line readers' gate, on errors of whole strings."""

    max_error: float = Field(
        default=READER_MAX_ERROR, ge=0, le=1,
        description="Share of validation strings a reader may misread (any digit wrong).",
    )  # fmt: skip
    min_margin: float = Field(
        default=GateConfig.model_fields["min_margin"].default, ge=0, le=1,
        description="Minimum validation-error improvement over the champion (a reader tuned "
        "on corrections needs none: it reads no fewer held-out corrections exactly).",
    )  # fmt: skip
    mnist_margin: float = Field(
        default=0.01, ge=0, le=1,
        description="A reader tuned on corrections may misread this much more of MNIST's "
        "guard strings (validation digits, strings no gate selects on) than the champion, "
        "and no more.",
    )  # fmt: skip


class CandidateRow(BaseModel):
    """One candidate's numbers in a decision."""

    id: str
    training_run: str
    model_name: str
    error: float
    cleared_floor: bool
    margin: float | None = None
    b: int | None = None
    c: int | None = None
    p_value: float | None = None  # McNemar's, or Wilcoxon's where ``likelier`` is set
    # Wilcoxon's: the examples whose right answer the candidate finds likelier, less likely.
    likelier: int | None = None
    less_likely: int | None = None


class Decision(BaseModel):
    """The gate's verdict, with the numbers behind it."""

    promoted: bool
    winner: str | None
    winner_training_run: str | None = None
    winner_model_name: str | None = None
    champion: str | None
    champion_error: float | None
    reason: str
    # The readers' gate keeps its own thresholds (the MNIST margin) in the records too.
    config: GateConfig | ReaderGateConfig
    rows: list[CandidateRow]
    # Readers tuned on corrections: the version they were gated on, and each one's error
    # on MNIST's guard strings (the rows hold the held-out corrections' errors).
    corrections_version: str | None = None
    mnist_errors: dict[str, float] = {}
    test: str = MCNEMAR  # the paired test of the rows' p-values


def pct(x: float) -> str:
    """An error rate as a percentage with two decimals."""
    return f"{100 * x:.2f} %"


def check_same_examples(candidates: list[CandidateEval], champion: CandidateEval | None) -> None:
    """Raise ValidationMismatch unless every model was validated on the same examples."""
    models = candidates + ([champion] if champion else [])
    reference = models[0]
    key = (reference.dataset_version, reference.validation_digest, reference.n)
    for other in models[1:]:
        if (other.dataset_version, other.validation_digest, other.n) != key:
            role = "champion" if other is champion else "candidate"
            raise ValidationMismatch(
                f"{role} {other.id} was evaluated on {other.n} examples of dataset "
                f"{other.dataset_version} (validation {other.validation_digest}), but "
                f"{reference.id} on {reference.n} of {reference.dataset_version} "
                f"(validation {reference.validation_digest}); re-evaluate both on the "
                "same validation split before comparing them"
            )


def _row(
    cand: CandidateEval, champion: CandidateEval | None, config: GateConfig, test: str = MCNEMAR
) -> CandidateRow:
    row = CandidateRow(
        id=cand.id,
        training_run=cand.training_run,
        model_name=cand.model_name,
        error=cand.error,
        cleared_floor=cand.error <= config.max_error + TOLERANCE,
    )
    if champion is not None:
        paired = mcnemar(champion.correct, cand.correct)
        row.margin, row.b, row.c, row.p_value = (
            champion.error - cand.error,
            paired.b,
            paired.c,
            paired.p_value,
        )
        if test == WILCOXON:
            likelier = likelihood_test(_log_likelihoods(champion), _log_likelihoods(cand))
            row.p_value, row.likelier, row.less_likely = (
                likelier.p_value, likelier.likelier, likelier.less_likely
            )  # fmt: skip
    return row


def _log_likelihoods(evaluation: CandidateEval) -> list[float]:
    if evaluation.log_likelihoods is None:
        raise ValueError(
            f"{evaluation.id} was evaluated without the log-likelihoods of the right answers, "
            "which this gate weighs"
        )
    return evaluation.log_likelihoods


def _verdict(
    best: CandidateRow, champion: CandidateEval, config: GateConfig, measured: str
) -> tuple[bool, str]:
    """Whether ``best`` beats ``champion`` by the margin, significantly; and why in words
    (``measured``: what the error is an error on, in words)."""
    assert best.margin is not None and best.p_value is not None
    big_enough = best.margin >= config.min_margin - TOLERANCE
    significant = best.p_value < config.alpha
    margin = (
        f"margin {100 * best.margin:.2f} pp {'≥' if big_enough else '<'} "
        f"{100 * config.min_margin:.2f} pp"
    )
    name = MCNEMAR if best.likelier is None else WILCOXON
    test = (
        f"{name} p = {format_p(best.p_value)} {'<' if significant else '≥'} {config.alpha:g}"
        + (f" (b = {best.b}, c = {best.c})" if best.likelier is None else
           f" on the right answers' likelihoods (likelier on {best.likelier} examples, less "
           f"likely on {best.less_likely}; b = {best.b}, c = {best.c})")
    )  # fmt: skip
    outcome = "promoted" if big_enough and significant else "refused"
    reason = (
        f"{best.id}: {measured} {pct(best.error)} vs champion {champion.id} "
        f"{pct(champion.error)} ({margin}), {test} → {outcome}"
    )
    return big_enough and significant, reason


def _choose(
    rows: list[CandidateRow], champion: CandidateEval | None, config: GateConfig, measured: str
) -> tuple[CandidateRow | None, str]:
    """The winning row (None if nobody wins) and the reason in words."""
    if not rows:
        return None, "no candidates to evaluate → no promotion"
    eligible = [r for r in rows if r.cleared_floor]
    if not eligible:
        return None, (
            f"no candidate clears the error floor {pct(config.max_error)} (best: {rows[0].id} "
            f"at {pct(rows[0].error)}) → no promotion"
        )
    best = eligible[0]
    if champion is not None and best.id == champion.id:
        return None, f"{best.id} is already the champion → no promotion"
    if champion is None:
        return best, (
            f"{best.id}: {measured} {pct(best.error)} ≤ floor {pct(config.max_error)}, "
            "no current champion → promoted"
        )
    promoted, reason = _verdict(best, champion, config, measured)
    return (best if promoted else None), reason


def decide(
    candidates: list[CandidateEval], champion: CandidateEval | None, config: GateConfig,
    test: str = MCNEMAR, measured: str = "validation error",
) -> Decision:  # fmt: skip
    """Apply the gate: floor, then margin and the paired ``test``'s significance (McNemar's
    by default) against the champion; ``measured`` names the errors in the reason."""
    if candidates:
        check_same_examples(candidates, champion)
    rows = sorted((_row(c, champion, config, test) for c in candidates),
                  key=lambda r: (r.error, r.id))  # fmt: skip
    winner, reason = _choose(rows, champion, config, measured)
    logger.info("promotion decision: %s", reason)
    return Decision(
        promoted=winner is not None,
        winner=winner.id if winner else None,
        winner_training_run=winner.training_run if winner else None,
        winner_model_name=winner.model_name if winner else None,
        champion=champion.id if champion else None,
        champion_error=champion.error if champion else None,
        reason=reason,
        config=config,
        rows=rows,
        test=test,
    )


def decide_adapted(
    heldout: list[CandidateEval], heldout_champion: CandidateEval, mnist: list[CandidateEval],
    mnist_champion: CandidateEval, config: ReaderGateConfig, corrections_version: str,
) -> Decision:  # fmt: skip
    """The gate of readers tuned on corrections: the best on the held-out corrections wins
    if it beats the champion there (it reads no fewer of them exactly, and finds their
    answers likelier: Wilcoxon's signed-rank test, one-sided, on each line's
    log-likelihood of its answer), and misreads no more of MNIST's guard strings
    (``mnist``: strings of the validation slice that no gate selects on) than the champion
    plus ``config.mnist_margin``.

    No fewer exactly, not more by ``config.min_margin``: the likelihoods are the evidence
    that the user's lines read better, the exact count only keeps a reader that reads
    fewer of them out. The held-out lines of a few hundred corrections are often all, or
    all but a few, lines the champion reads already, so that no tuned reader could read
    more: tuned on 50, 100 and 300 real check amounts, readers that read 79.7, 81.8 and
    83.1 % of 780 others exactly against the champion's 77.9 % read exactly as many of
    their 13, 23 and 64 held-out lines as it did, their answers likelier (Wilcoxon
    p = 0.024, 0.024 and 0.0003), and were refused for the margin (docs/record/tuning.md).

    Likelihoods, not McNemar's test, on the held-out lines: a fifth of a few hundred
    corrections is held out, and too few of those are read exactly by one reader and not
    the other for McNemar's test to tell, where every line says how much likelier the
    tuned reader finds its answer. Tuned on 300 real check amounts, a reader that read 80.9 %
    of 780 others exactly against the champion's 72.2 % was refused by McNemar's test on
    its 64 held-out lines (b = 2, c = 4, p = 0.69); Wilcoxon's gave p = 0.031
    (docs/record/tuning.md)."""
    check_same_examples(mnist, mnist_champion)
    # No floor on the user's lines, and no margin beyond reading as many of them exactly.
    on_heldout = config.model_copy(update={"max_error": 1.0, "min_margin": 0.0})
    decision = decide(heldout, heldout_champion, on_heldout, test=WILCOXON,
                      measured="held-out error")  # fmt: skip
    errors = {e.id: e.error for e in [*mnist, mnist_champion]}
    update: dict = {"config": config, "corrections_version": corrections_version,
                    "mnist_errors": errors}  # fmt: skip
    winner = decision.winner
    if winner is None:
        update["reason"] = f"on the held-out corrections ({corrections_version}): " + (
            decision.reason
        )
        return decision.model_copy(update=update)
    worse = errors[winner] - errors[mnist_champion.id]
    kept = worse <= config.mnist_margin + TOLERANCE
    mnist_words = (
        f"MNIST guard strings: error {pct(errors[winner])} vs champion "
        f"{pct(errors[mnist_champion.id])} ({'within' if kept else 'beyond'} the margin "
        f"{100 * config.mnist_margin:.2f} pp)"
    )
    # The held-out verdict is the first of two: the outcome is said once, after both.
    heldout_words = decision.reason.removesuffix(" → promoted")
    update["reason"] = (
        f"held-out corrections ({corrections_version}): {heldout_words}; {mnist_words} → "
        + ("promoted" if kept else "refused")
    )
    if not kept:
        update.update(promoted=False, winner=None, winner_training_run=None,
                      winner_model_name=None)  # fmt: skip
    logger.info("adapted reader decision: %s", update["reason"])
    return decision.model_copy(update=update)
