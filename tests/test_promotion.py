"""The promotion gate: floor, margin over the champion, McNemar significance (Wilcoxon's on
the answers' likelihoods for readers tuned on corrections), determinism."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.gatekeeper import decision_markdown, decision_page
from digitflow.promotion import (
    CandidateEval,
    Decision,
    GateConfig,
    ReaderGateConfig,
    ValidationMismatch,
    decide,
    decide_adapted,
)

N = 1000
INDICES = np.arange(0, 2 * N, 2)


def model(
    name: str, wrong: list[int] | range, run: str = "run1", version: str = "v1"
) -> CandidateEval:
    """A model that gets exactly the examples in ``wrong`` wrong out of N."""
    correct = np.ones(N, dtype=bool)
    correct[list(wrong)] = False
    return CandidateEval.from_correct(run, name, correct, version, INDICES)


CONFIG = GateConfig()


def test_defaults_match_the_design() -> None:
    assert (CONFIG.max_error, CONFIG.min_margin, CONFIG.alpha) == (0.05, 0.001, 0.05)


def test_without_champion_the_best_candidate_that_clears_the_floor_wins() -> None:
    candidates = [model("mlp", range(19)), model("cnn", range(10)), model("big", range(60))]
    decision = decide(candidates, None, CONFIG)
    assert decision.promoted
    assert decision.winner == "run1/cnn"
    assert (decision.winner_training_run, decision.winner_model_name) == ("run1", "cnn")
    assert "no current champion" in decision.reason
    assert [r.model_name for r in decision.rows] == ["cnn", "mlp", "big"]
    assert [r.cleared_floor for r in decision.rows] == [True, True, False]
    assert all(r.p_value is None and r.margin is None for r in decision.rows)


def test_nobody_clears_the_floor_means_no_promotion_with_a_reason() -> None:
    decision = decide([model("a", range(80)), model("b", range(60))], None, CONFIG)
    assert not decision.promoted and decision.winner is None
    assert "no candidate clears the error floor 5.00 %" in decision.reason
    assert "run1/b at 6.00 %" in decision.reason


def test_empty_candidate_list_is_a_refusal_not_an_exception() -> None:
    decision = decide([], model("champ", range(10)), CONFIG)
    assert not decision.promoted
    assert decision.rows == []
    assert "no candidates" in decision.reason


def test_better_but_not_significant_is_refused() -> None:
    champion = model("champ", range(20), run="run0")  # 2.0 %
    candidate = model("cnn", range(3, 20))  # 1.7 %: margin 0.3 pp, but only c = 3, b = 0
    decision = decide([candidate], champion, CONFIG)
    assert not decision.promoted
    row = decision.rows[0]
    assert (row.b, row.c) == (0, 3)
    assert row.margin == pytest.approx(0.003)
    assert row.p_value == pytest.approx(0.25)  # exact: 2 * (1/2)^3
    assert "McNemar p = 0.250 ≥ 0.05" in decision.reason
    assert decision.reason.endswith("→ refused")


def test_better_by_the_margin_and_significant_is_promoted() -> None:
    champion = model("champ", range(40), run="run0")  # 4.0 %
    candidate = model("cnn", range(40, 50))  # 1.0 %, disjoint mistakes: b = 10, c = 40
    decision = decide([candidate], champion, CONFIG)
    assert decision.promoted and decision.winner == "run1/cnn"
    row = decision.rows[0]
    assert (row.b, row.c) == (10, 40)
    assert row.p_value is not None and row.p_value < 0.001
    assert decision.reason.startswith(
        "run1/cnn: validation error 1.00 % vs champion run0/champ 4.00 %"
    )
    assert "(margin 3.00 pp ≥ 0.10 pp)" in decision.reason
    assert decision.reason.endswith("→ promoted")


def test_significant_but_below_the_margin_is_refused() -> None:
    champion = model("champ", range(40), run="run0")
    candidate = model("cnn", range(1, 40))  # one fewer mistake: 0.1 pp but p = 1.0
    strict = GateConfig(min_margin=0.002)
    decision = decide([candidate], champion, strict)
    assert not decision.promoted
    assert "margin 0.10 pp < 0.20 pp" in decision.reason


def test_only_the_best_candidate_is_tested_against_the_champion() -> None:
    champion = model("champ", range(40), run="run0")  # 4.0 %
    best = model("a", range(200, 229))  # 2.9 %, but b = 29, c = 40: not significant
    runner_up = model("b", range(30))  # 3.0 %, b = 0, c = 10: would pass on its own
    assert decide([runner_up], champion, CONFIG).promoted
    decision = decide([runner_up, best], champion, CONFIG)
    assert not decision.promoted
    assert decision.reason.startswith("run1/a:") and decision.reason.endswith("→ refused")
    assert [r.id for r in decision.rows] == ["run1/a", "run1/b"]


def test_margin_exactly_at_the_threshold_passes_despite_float_rounding() -> None:
    champion = model("champ", range(63), run="run0")  # 6.3 %
    candidate = model("cnn", range(62))  # 6.2 %: in floats the margin is 0.000999…9
    assert champion.error - candidate.error < 0.001
    decision = decide([candidate], champion, GateConfig(max_error=0.1))
    assert "margin 0.10 pp ≥ 0.10 pp" in decision.reason


def test_champion_evaluated_on_other_examples_is_a_clear_error() -> None:
    champion = model("champ", range(40), run="run0", version="v0")
    with pytest.raises(ValidationMismatch, match=r"champion run0/champ .* dataset v0"):
        decide([model("cnn", range(10))], champion, CONFIG)
    other_slice = CandidateEval.from_correct(
        "run0", "champ", np.ones(N, dtype=bool), "v1", INDICES + 1
    )
    with pytest.raises(ValidationMismatch, match="re-evaluate both"):
        decide([model("cnn", range(10))], other_slice, CONFIG)


def test_ties_are_broken_by_name_whatever_the_input_order() -> None:
    a, b, c = model("zeta", range(10)), model("alpha", range(10, 20)), model("mid", range(10))
    winners = {decide(order, None, CONFIG).winner for order in ([a, b, c], [c, b, a], [b, a, c])}
    assert winners == {"run1/alpha"}


def test_decision_round_trips_json_and_renders_markdown() -> None:
    champion = model("champ", range(40), run="run0")
    decision = decide([model("cnn", range(40, 50)), model("mlp", range(70))], champion, CONFIG)
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
    text = decision_markdown(decision)
    assert text.startswith("## Promoted: `run1/cnn`")
    assert "Champion before this decision: `run0/champ` at 4.00 %." in text
    assert "| `run1/cnn` | 1.00 % | yes | +3.00 | 10 | 40 |" in text
    assert "| `run1/mlp` | 7.00 % | no | -3.00 |" in text
    first = decision_markdown(decide([model("cnn", range(10))], None, CONFIG))
    assert "no champion before" in first and "| - | - | - | - |" in first


def test_a_champion_among_the_candidates_is_not_promoted_again() -> None:
    champion = model("cnn", range(10))
    decision = decide([model("cnn", range(10)), model("mlp", range(40))], champion, CONFIG)
    assert not decision.promoted and decision.winner is None
    assert decision.reason == "run1/cnn is already the champion → no promotion"


def test_the_decision_page_shows_the_decision_then_the_images_inline() -> None:
    decision = decide([model("cnn", range(10))], None, CONFIG)
    page = decision_page(decision, "run1/cnn", {"Confusion matrix": b"\x89PNG one"})
    assert page.startswith(decision_markdown(decision))
    assert "### run1/cnn on the validation slice" in page
    assert "![Confusion matrix](data:image/png;base64,iVBORyBvbmU=)" in page
    assert decision_page(decision, None, {}) == decision_markdown(decision)


def _strings(
    name: str, wrong: range | list[int], run: str, digest: str, n: int = 200, gain: float = 0.0
) -> CandidateEval:
    """A reader that misreads the strings ``wrong`` of ``n``; it finds the answer of each
    string it reads e^-1 likely, of each it misreads e^-3, and all ``gain`` nats likelier."""
    correct = np.ones(n, dtype=bool)
    correct[list(wrong)] = False
    likely = np.where(correct, -1.0, -3.0) + gain
    return CandidateEval.from_mask(run, name, correct, "v1", digest, log_likelihoods=likely)


def _adapted(heldout_wrong: range | list[int], mnist_wrong: range, gain: float = 0.0) -> Decision:
    """A reader tuned on corrections against a champion that misreads 60 of 200 held-out
    corrections and 30 of 200 MNIST guard strings."""
    return decide_adapted(
        [_strings("line_reader", heldout_wrong, "tuned", "c1", gain=gain)],
        _strings("line_reader", range(60), "champ", "c1"),
        [_strings("line_reader", mnist_wrong, "tuned", "m")],
        _strings("line_reader", range(30), "champ", "m"),
        ReaderGateConfig(), "c1",
    )  # fmt: skip


def test_a_reader_tuned_on_corrections_wins_when_they_read_better_and_mnist_holds() -> None:
    decision = _adapted(range(10), range(31))
    assert decision.promoted and decision.winner == "tuned/line_reader", decision.reason
    assert decision.corrections_version == "c1"
    assert decision.mnist_errors == pytest.approx(
        {"tuned/line_reader": 0.155, "champ/line_reader": 0.15}
    )
    assert "within the margin" in decision.reason
    assert decision.reason.count("→") == 1 and decision.reason.endswith("→ promoted")
    markdown = decision_markdown(decision)
    assert "MNIST" in markdown
    # The table holds held-out errors, with no floor on them (the decision's own rules).
    assert "| candidate | held-out error | clears floor |" in markdown
    assert "| `tuned/line_reader` | 5.00 % | - |" in markdown, markdown


def test_a_reader_tuned_on_corrections_that_forgets_mnist_is_refused() -> None:
    decision = _adapted(range(10), range(40))  # 5 points worse on MNIST, margin 1
    assert not decision.promoted and decision.winner is None
    assert "beyond the margin" in decision.reason and "refused" in decision.reason
    # One outcome, said after both parts: not "promoted" on the one and "refused" after.
    assert "promoted" not in decision.reason and decision.reason.endswith("→ refused")


def test_a_reader_tuned_on_corrections_that_reads_them_no_better_is_refused() -> None:
    decision = _adapted(range(58), range(20))
    assert not decision.promoted
    assert decision.reason.startswith("on the held-out corrections (c1)")


def test_a_tuned_reader_that_finds_the_answers_likelier_wins_where_mcnemar_cannot_tell() -> None:
    # Four held-out lines read that the champion misread, two misread that it read: too
    # few for McNemar's test (p = 0.69); but the tuned reader finds every answer likelier.
    tuned_wrong = [*range(4, 60), 100, 101]
    decision = _adapted(tuned_wrong, range(31), gain=0.2)
    assert decision.promoted and decision.winner == "tuned/line_reader", decision.reason
    assert decision.test == "Wilcoxon"
    [row] = decision.rows
    assert (row.b, row.c, row.likelier, row.less_likely) == (2, 4, 198, 2)
    assert row.p_value is not None and row.p_value < 1e-6
    assert "Wilcoxon p = " in decision.reason and "b = 2, c = 4" in decision.reason
    markdown = decision_markdown(decision)
    assert "Wilcoxon p |" in markdown and "log-likelihood of its right answer" in markdown
    # The same lines, the answers no likelier than the champion's elsewhere: refused.
    refused = _adapted(tuned_wrong, range(31), gain=-0.2)
    assert not refused.promoted and "Wilcoxon p = " in refused.reason, refused.reason


def test_a_tuned_reader_that_reads_as_many_held_out_lines_and_finds_them_likelier_wins() -> None:
    # The champion already reads all but the 60 it misreads, and the tuned reader misreads
    # the same 60: no margin to gain in lines read exactly, every answer likelier.
    decision = _adapted(range(60), range(31), gain=0.3)
    assert decision.promoted and decision.winner == "tuned/line_reader", decision.reason
    assert (
        "tuned/line_reader: held-out error 30.00 % vs champion champ/line_reader 30.00 % "
        "(margin 0.00 pp ≥ 0.00 pp)" in decision.reason
    ), decision.reason
    assert "no fewer read exactly" in decision_markdown(decision)
    # As many read exactly, the answers no likelier: refused.
    refused = _adapted(range(60), range(31))
    assert not refused.promoted and "refused" in refused.reason, refused.reason


def test_a_tuned_readers_decision_keeps_its_gates_mnist_margin_when_recorded() -> None:
    decision = _adapted(range(10), range(31))
    again = Decision.model_validate(decision.model_dump(mode="json"))
    assert isinstance(again.config, ReaderGateConfig) and again.config.mnist_margin == 0.01
    assert "an error no more than the champion's + 1.00 pp" in decision_markdown(again)
    # A classifier's decision reads back as the classifiers' gate.
    plain = decide([model("cnn", range(10))], None, GateConfig())
    assert type(Decision.model_validate(plain.model_dump(mode="json")).config) is GateConfig


def test_a_tuned_reader_that_finds_the_answers_likelier_but_reads_fewer_is_refused() -> None:
    decision = _adapted(range(62), range(31), gain=0.5)
    assert not decision.promoted and "margin -1.00 pp" in decision.reason, decision.reason


def test_the_adapted_gate_needs_the_answers_likelihoods() -> None:
    bare = CandidateEval.from_mask("champ", "line_reader", np.ones(5, bool), "v1", "c1")
    tuned = _strings("line_reader", [], "tuned", "c1", n=5)
    with pytest.raises(ValueError, match="champ/line_reader was evaluated without"):
        decide_adapted([tuned], bare, [tuned], tuned, ReaderGateConfig(), "c1")


def test_a_decision_recorded_before_the_likelihood_test_reads_as_mcnemars() -> None:
    recorded = decide([model("cnn", range(10))], model("old", range(60), run="run0"), GateConfig())
    old = recorded.model_dump(mode="json")
    del old["test"]
    for row in old["rows"]:
        del row["likelier"], row["less_likely"]
    again = Decision.model_validate(old)
    assert again.test == "McNemar" and again.rows[0].likelier is None
    assert "| McNemar p |" in decision_markdown(again)
