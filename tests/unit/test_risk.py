"""Risk rating at the start: score, thresholds, the catastrophic-harm override, reasons."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from models.risk import (
    FACTOR_LABELS,
    FACTOR_SCALES,
    HIGH_THRESHOLD,
    MEDIUM_THRESHOLD,
    RiskFactors,
    RiskLevel,
    rate_risk,
    risk_score,
)

FACTORS = tuple(FACTOR_LABELS)
score_1_to_5 = st.integers(min_value=1, max_value=5)
factors_strategy = st.builds(
    RiskFactors,
    potential_harm=score_1_to_5,
    people_affected=score_1_to_5,
    likelihood_of_recurrence=score_1_to_5,
    regulatory_impact=score_1_to_5,
    control_strength=score_1_to_5,
)


def factors(**overrides: int) -> RiskFactors:
    values = dict.fromkeys(FACTORS, 1)
    values.update(overrides)
    return RiskFactors(**values)


def test_every_factor_has_a_written_scale_from_one_to_five() -> None:
    assert set(FACTOR_SCALES) == set(FACTORS)
    for scale in FACTOR_SCALES.values():
        assert sorted(scale) == [1, 2, 3, 4, 5]
        assert all(text.strip() for text in scale.values())


def test_potential_harm_counts_twice_in_the_score() -> None:
    assert risk_score(factors(potential_harm=3)) == 2 * 3 + 4


@given(factors_strategy)
def test_score_stays_between_6_and_30(f: RiskFactors) -> None:
    rating = rate_risk(f)
    assert 6 <= rating.score <= 30
    assert rating.score == risk_score(f)


def test_lowest_and_highest_factors_reach_the_score_bounds() -> None:
    assert rate_risk(factors()).score == 6
    assert rate_risk(factors(**dict.fromkeys(FACTORS, 5))).score == 30


@pytest.mark.parametrize(
    ("score_factors", "expected"),
    [
        # 2*4 + 3 + 3 + 3 + 3 = 20: the high threshold itself
        ({"potential_harm": 4, "people_affected": 3, "likelihood_of_recurrence": 3,
          "regulatory_impact": 3, "control_strength": 3}, RiskLevel.HIGH),
        # 19: one below high
        ({"potential_harm": 4, "people_affected": 2, "likelihood_of_recurrence": 3,
          "regulatory_impact": 3, "control_strength": 3}, RiskLevel.MEDIUM),
        # 13: the medium threshold itself
        ({"potential_harm": 3, "people_affected": 1, "likelihood_of_recurrence": 2,
          "regulatory_impact": 2, "control_strength": 2}, RiskLevel.MEDIUM),
        # 12: one below medium
        ({"potential_harm": 3, "people_affected": 1, "likelihood_of_recurrence": 1,
          "regulatory_impact": 2, "control_strength": 2}, RiskLevel.LOW),
    ],
)
def test_level_follows_the_documented_thresholds(
    score_factors: dict[str, int], expected: RiskLevel
) -> None:
    rating = rate_risk(RiskFactors(**score_factors))
    assert rating.level == expected
    assert rating.override is None


def test_thresholds_are_the_documented_ones() -> None:
    assert (HIGH_THRESHOLD, MEDIUM_THRESHOLD) == (20, 13)


@given(factors_strategy, st.sampled_from(FACTORS))
def test_raising_any_factor_never_lowers_the_level(f: RiskFactors, name: str) -> None:
    current = getattr(f, name)
    if current == 5:
        return
    raised = f.model_copy(update={name: current + 1})
    # rank: high 0, medium 1, low 2; a raise must not move the rank up
    assert rate_risk(raised).level.rank <= rate_risk(f).level.rank


@given(factors_strategy)
def test_catastrophic_harm_with_weak_or_absent_controls_is_always_high(f: RiskFactors) -> None:
    if f.potential_harm == 5 and f.control_strength >= 4:
        assert rate_risk(f).level == RiskLevel.HIGH


def test_override_lifts_a_medium_score_to_high_and_says_so() -> None:
    f = factors(potential_harm=5, control_strength=4)  # score 17: medium by score
    rating = rate_risk(f)
    assert rating.score == 17
    assert rating.level == RiskLevel.HIGH
    assert rating.override is not None
    assert any(r.startswith("override:") and "always high" in r for r in rating.reasons)


@given(factors_strategy)
def test_catastrophic_harm_is_never_rated_low(f: RiskFactors) -> None:
    if f.potential_harm == 5:
        assert rate_risk(f).level != RiskLevel.LOW


@given(factors_strategy)
def test_reasons_mention_every_factor_scored_four_or_more(f: RiskFactors) -> None:
    rating = rate_risk(f)
    for name in FACTORS:
        value = getattr(f, name)
        mentioned = any(
            r.startswith(f"{FACTOR_LABELS[name]} {value}/5") for r in rating.reasons
        )
        assert mentioned == (value >= 4), name


@given(factors_strategy)
def test_reasons_start_with_the_score_and_the_threshold_it_met(f: RiskFactors) -> None:
    rating = rate_risk(f)
    assert rating.reasons[0].startswith(f"score {rating.score} of 30 (")


def test_reasons_quote_the_written_scale_for_a_driving_factor() -> None:
    rating = rate_risk(factors(potential_harm=5, control_strength=5))
    assert "potential harm 5/5: catastrophic: death or permanent serious harm possible" in (
        rating.reasons
    )
    assert "strength of current controls 5/5: absent: no effective control" in rating.reasons


def test_seed_safeguarding_example_rates_high() -> None:
    rating = rate_risk(
        RiskFactors(potential_harm=5, people_affected=3, likelihood_of_recurrence=4,
                    regulatory_impact=4, control_strength=4)
    )
    assert rating.level == RiskLevel.HIGH
    assert rating.score == 25


@pytest.mark.parametrize("bad", [0, 6, -1])
def test_factor_outside_one_to_five_is_refused(bad: int) -> None:
    with pytest.raises(ValidationError):
        factors(regulatory_impact=bad)


def test_factor_given_as_text_or_fraction_is_refused() -> None:
    with pytest.raises(ValidationError):
        RiskFactors.model_validate({**dict.fromkeys(FACTORS, 3), "potential_harm": "5"})
    with pytest.raises(ValidationError):
        RiskFactors.model_validate({**dict.fromkeys(FACTORS, 3), "potential_harm": 4.5})


def test_unknown_factor_is_refused() -> None:
    with pytest.raises(ValidationError):
        RiskFactors.model_validate({**dict.fromkeys(FACTORS, 3), "vibes": 2})
