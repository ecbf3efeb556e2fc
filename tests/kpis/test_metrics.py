"""The KPI arithmetic: attribution, intervals, sample sizes, plain sentences."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abm import metrics


@given(st.lists(st.sampled_from(["pb-a", "pb-b", "pb-c", ("pb-a", "ads")]), min_size=1, max_size=30),
       st.sampled_from([m for m in metrics.MODELS if m != "markov"]))
@settings(deadline=None, max_examples=200)
def test_attribution_shares_of_a_conversion_add_up_to_one(keys, model):
    shares = metrics.attribution_shares(keys, model)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert set(shares) <= set(keys)


def test_attribution_models():
    keys = ["linkedin-warmup", "intro-email", "intro-email", "webinar"]
    assert metrics.attribution_shares(keys, "last_touch") == {"webinar": 1.0}
    assert metrics.attribution_shares(keys, "first_touch") == {"linkedin-warmup": 1.0}
    assert metrics.attribution_shares(keys, "even") == {"linkedin-warmup": 0.25, "intro-email": 0.5, "webinar": 0.25}
    assert metrics.attribution_shares([], "even") == {}
    # U-shaped: 40% to the first and the last, 20% across the middle
    assert metrics.attribution_shares(keys, "u_shaped") == {"linkedin-warmup": 0.4, "intro-email": 0.2, "webinar": 0.4}
    with pytest.raises(ValueError, match="unknown attribution model"):
        metrics.attribution_shares(keys, "shapley")


def test_position_weights_w_shaped_and_time_decay():
    # W-shaped: 30% to the first touch, the last touch before the lead (3rd) and the last; 10% across the others
    assert metrics.position_weights(5, "w_shaped", lead_at=3) == pytest.approx([0.3, 0.05, 0.3, 0.05, 0.3])
    assert metrics.position_weights(3, "w_shaped", lead_at=2) == pytest.approx([1 / 3] * 3)
    # without a lead anchor between the first and the last touch, W-shaped is U-shaped
    assert metrics.position_weights(4, "w_shaped", lead_at=4) == metrics.position_weights(4, "u_shaped")
    # time decay, half-life 7 days: a touch 7 days old weighs half one of today
    assert metrics.position_weights(2, "time_decay", ages=[7, 0], half_life=7) == pytest.approx([1 / 3, 2 / 3])


def test_markov_removal_effects_on_a_chain_computed_by_hand():
    s, c, n = metrics.START, metrics.CONVERSION, metrics.NULL
    moves = {(s, "a"): 2, ("a", "b"): 1, ("b", c): 1, ("a", n): 1, (s, "b"): 1, ("b", n): 1}
    # start -> a (2/3) -> b (1/2) -> conversion (1/2), start -> b (1/3) -> conversion (1/2): 1/6 + 1/6
    assert metrics.conversion_probability(moves) == pytest.approx(1 / 3)
    # without b nothing converts; without a only the 1/6 through b alone remains
    assert metrics.removal_effects(moves) == pytest.approx({"a": 0.5, "b": 1.0})


@pytest.mark.parametrize("counts,expected", [
    ((56, 70, 48, 80), (0.2000, 0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.6000, 0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.5714, 0.0582, 0.8062)),
    ((5, 56, 0, 29), (0.0893, -0.0381, 0.1926)),
])
def test_newcombe_interval_matches_the_published_examples(counts, expected):
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10
    d = metrics.difference(*counts)
    assert (d.estimate, d.low, d.high) == tuple(pytest.approx(x, abs=1e-4) for x in expected)


def test_wilson_interval_at_zero_successes_is_not_degenerate():
    w = metrics.wilson(0, 20)
    assert w.low == 0.0 and w.high == pytest.approx(0.1611, abs=1e-4)


def test_sample_size_for_a_five_point_lift():
    # two-sided 5%, 80% power, 10% -> 15%: 686 per group (the usual pooled-variance formula)
    assert metrics.n_per_group(0.10, 0.05) == 686


def test_sentences_say_what_a_marketer_needs_to_hear():
    assert "not enough accounts yet: about" in metrics.lift_sentence("opportunity", 30, 300, 2, 30)
    assert "set a holdout" in metrics.lift_sentence("opportunity", 30, 300, 0, 0)
    assert "the playbook works" in metrics.lift_sentence("engaged", 600, 1000, 300, 1000)


def test_the_lift_interval_covers_the_true_effect_in_at_least_93_percent_of_runs():
    rng = random.Random(20261123)
    runs, covered = 2000, 0
    for _ in range(runs):
        p_control = rng.uniform(0.02, 0.4)
        effect = rng.uniform(0.0, 0.15)
        n_t, n_c = rng.randint(150, 1500), rng.randint(40, 400)
        s_t = sum(rng.random() < p_control + effect for _ in range(n_t))
        s_c = sum(rng.random() < p_control for _ in range(n_c))
        d = metrics.difference(s_t, n_t, s_c, n_c)
        covered += d.low <= effect <= d.high
    assert covered / runs >= 0.93


def test_a_control_group_near_100_percent_still_asks_for_more_accounts():
    assert metrics.lift_sentence("opportunity", 1, 2, 1, 1).startswith("not enough accounts yet")
