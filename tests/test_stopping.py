"""The Beta stopping rule of adaptive consistency, against values computed by hand."""

from __future__ import annotations

import pytest
from scipy import integrate

from tdrm_search.config import SearchConfig
from tdrm_search.stopping import consensus, should_stop, stopping_point


def paper_probability(a: float, b: float) -> float:
    """The rule as the paper's code computes it: int_0.5^1 x^a (1-x)^b dx / int_0^1 x^a (1-x)^b dx."""
    density = lambda x: x**a * (1 - x) ** b  # noqa: E731
    return integrate.quad(density, 0.5, 1)[0] / integrate.quad(density, 0, 1)[0]


def test_probability_the_leader_beats_the_runner_up():
    # v1 votes against v2: P(Beta(v1 + 1, v2 + 1) > 1/2) = P(Binomial(v1 + v2 + 1, 1/2) > v2), by hand
    assert consensus(["7"] * 4).probability == pytest.approx(31 / 32)  # 1 - 1/32
    assert consensus(["7"] * 3).probability == pytest.approx(15 / 16)
    assert consensus(["7", "7", "7", "8"]).probability == pytest.approx(26 / 32)  # 1 - (1 + 5) / 32
    assert consensus(["7", "8", "7", "8"]).probability == pytest.approx(0.5)
    assert consensus([]).probability == pytest.approx(0.5)  # no vote: the uniform prior
    for a, b in ((5, 1), (9, 3), (2.5, 0.7)):
        answers = ["x"] * 20
        weights = [a / 10] * 10 + [b / 10] * 10
        answers[10:] = ["y"] * 10
        assert consensus(answers, weights).probability == pytest.approx(paper_probability(a, b), abs=1e-9)


def test_only_the_top_two_answers_count_and_spacing_does_not_split_votes():
    vote = consensus(["12", None, "1 2", "12.", "5", "6", None])
    assert vote.answer == "12" and vote.votes == 3
    assert vote.probability == pytest.approx(26 / 32)  # 3 against 1, as above: "6" and None do not count


def test_weights_replace_votes():
    vote = consensus(["a", "a", "b"], [2, 2, 1])  # 4 against 1: 1 - (1 + 6) / 64
    assert vote.answer == "a" and vote.probability == pytest.approx(57 / 64)
    assert consensus(["a", "a", "b"], [0.1, 0.1, 3]).answer == "b"
    with pytest.raises(ValueError, match="3 answers but 2 weights"):
        consensus(["a", "a", "b"], [1, 1])
    for bad in (-0.5, float("nan"), float("inf")):  # a negative runner-up would inflate P; NaN would never stop
        with pytest.raises(ValueError, match="finite and >= 0"):
            consensus(["a", "a", "b"], [1, 1, bad])


def test_stop_threshold_and_replay_in_waves():
    assert should_stop(["3"] * 4) and not should_stop(["3"] * 3)  # 31/32 >= 0.95 > 15/16
    assert should_stop(["3"] * 3, confidence=0.9)
    answers = ["1", "2", "1", "1", "1", "1", "1", "1"]
    # after k answers: 5 of 6 -> 1 - 8/128 = 0.9375; 6 of 7 -> 1 - 9/256 = 0.965
    assert stopping_point(answers) == 7
    assert stopping_point(answers, wave=4) == 8  # checked after 4 (0.8125) and 8 only
    assert stopping_point(["1", "2"] * 5) == 10  # never settles: everything is used
    assert stopping_point(answers, weights=[1, 5, 1, 1, 1, 1, 1, 1]) == 8


@pytest.mark.parametrize(
    "options, message",
    [
        ({"stop": "vote"}, "unknown stop 'vote'"),
        ({"stop": "consensus", "confidence": 0.5}, r"confidence must lie in \(0.5, 1\)"),
        ({"confidence": 1.0}, "confidence must lie"),
        ({"wave": 0}, "wave must be >= 1"),
    ],
)
def test_bad_stop_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig.make("best_of_n", 16, 0, **options)
