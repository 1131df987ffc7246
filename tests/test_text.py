"""Characters as codes, and completing a prompt with any character model."""

import numpy as np

from pipeline.text import UNKNOWN, Vocabulary, complete


def test_codes_round_trip_and_unknown_characters_are_code_zero():
    vocabulary = Vocabulary.of("hello, world")
    assert vocabulary.chars[0] == UNKNOWN and vocabulary.chars[1:] == tuple(sorted(set("hello, world")))
    codes = vocabulary.encode("hold")
    assert codes.dtype == np.uint8 and vocabulary.decode(codes) == "hold"
    assert list(vocabulary.encode("hex")) == [vocabulary.chars.index("h"), vocabulary.chars.index("e"), 0]
    assert vocabulary.decode(vocabulary.encode("x")) == "\ufffd"


def test_a_large_vocabulary_takes_two_bytes_a_code():
    vocabulary = Vocabulary.of("".join(chr(c) for c in range(0x400, 0x600)))
    assert vocabulary.size == 513 and vocabulary.dtype == np.uint16
    assert vocabulary.decode(vocabulary.encode("\u0450\u05ff")) == "\u0450\u05ff"


def always(code: int, size: int):
    """A character model that always answers `code`, and records the windows it was shown."""
    shown = []

    def predict(windows):
        shown.append(windows.copy())
        p = np.full((*windows.shape, size), 0.1 / (size - 1))
        p[..., code] = 0.9
        return p

    return predict, shown


def test_completions_read_each_prompt_at_its_own_last_character_within_the_window():
    vocabulary = Vocabulary.of("ab")
    predict, shown = always(vocabulary.chars.index("b"), vocabulary.size)
    made = complete(predict, vocabulary, ["a", "aaaa"], length=3, window=4, temperature=0)
    assert made == ["bbb", "bbb"]
    # the last call, before the third character: the second prompt's last 4 characters
    assert shown[0].shape == (2, 4) and list(shown[-1][1]) == list(vocabulary.encode("aabb"))


def test_sampled_completions_repeat_with_the_seed_and_never_draw_unknown():
    vocabulary = Vocabulary.of("abc")

    def uniform(windows):
        return np.full((*windows.shape, vocabulary.size), 1 / vocabulary.size)

    first = complete(uniform, vocabulary, "a", length=50, window=8, temperature=1.0, seed=3)
    assert first == complete(uniform, vocabulary, "a", length=50, window=8, temperature=1.0, seed=3)
    assert set(first[0]) <= set("abc") and len(set(first[0])) == 3
