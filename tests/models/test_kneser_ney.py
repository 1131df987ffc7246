"""The Kneser-Ney n-gram baseline: probabilities checked by hand on a tiny text, distributions that
sum to 1, the order chosen on validation text, and the logged form rebuilt from its tables."""

import numpy as np
import pytest

from pipeline.models.kneser_ney import KneserNey, highest_order

A, B = 1, 2  # codes of a tiny vocabulary: 0 <unk>, 1 'a', 2 'b'
TEXT = np.array([A, A, B, A, B])  # "aabab"


def test_bigram_probabilities_match_the_formula_by_hand():
    model = KneserNey(3, max_order=2).fit(TEXT)
    # unigrams from continuation counts: 'a' follows two distinct characters, 'b' one; D1 = 1/3
    unigram = {0: 2 / 27, A: 17 / 27, B: 8 / 27}
    # bigrams from raw counts: aa 1, ab 2, ba 1; D2 = n1 / (n1 + 2 n2) = 2 / 4
    after_a = {0: 2 / 81, A: 30.5 / 81, B: 48.5 / 81}
    after_b = {0: 0.5 * 2 / 27, A: 0.5 + 0.5 * 17 / 27, B: 0.5 * 8 / 27}
    windows = np.array([[A, B, 0]])  # predictions after 'a', after 'b', after <unk> (never seen)
    p = model.predict(windows)[0]
    for position, expected in enumerate([after_a, after_b, unigram]):
        assert p[position] == pytest.approx([expected[c] for c in range(3)], abs=1e-6)


def test_every_distribution_sums_to_one_and_gives_every_character_a_chance():
    rng = np.random.default_rng(0)
    text = rng.integers(1, 6, 500)
    model = KneserNey(7, max_order=4).fit(text)
    p = model.predict(rng.integers(0, 7, (5, 12)))
    assert p.shape == (5, 12, 7)
    assert np.allclose(p.sum(-1), 1.0, atol=1e-6) and p.min() > 0


def test_the_order_is_the_one_the_validation_text_likes_best():
    periodic = np.tile([A, A, B], 100)  # after "a" either; after "aa" always 'b': order 3 knows
    model = KneserNey(3, max_order=4).fit(periodic, validation=periodic[:60])
    assert model.order == min(model.validation_bits, key=model.validation_bits.get)
    assert model.validation_bits[3] < model.validation_bits[2] < model.validation_bits[1]


def test_scoring_one_character_agrees_with_the_whole_distribution():
    rng = np.random.default_rng(2)
    text = rng.integers(1, 5, 400)
    model = KneserNey(5, max_order=3).fit(text)
    at = np.arange(2, 50)
    single = model.target_probabilities(text, at)[-1]
    windows = text[at[:, None] - 2 + np.arange(3)]  # the two characters before, then the character
    whole = model.predict(windows[:, :2])[:, -1]
    assert single == pytest.approx(whole[np.arange(len(at)), text[at]], rel=1e-5)


def test_the_logged_form_predicts_the_same():
    model = KneserNey(3, max_order=3).fit(np.tile([A, B, B, A], 20), validation=np.tile([A, B, B, A], 5))
    again = KneserNey.rebuilt(model.arrays())
    windows = np.array([[A, B, B, A, A]])
    assert np.array_equal(again.predict(windows), model.predict(windows))


def test_orders_stop_where_a_key_would_overflow_64_bits():
    assert highest_order(104) == 9 and highest_order(2) == 63
    assert KneserNey(104, max_order=20).max_order == 9
