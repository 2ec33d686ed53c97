"""Kindergarten reading: letter questions whose answer is one of the 26 letters A-Z.

    after C        -> D        before C     -> B
    first of CAT   -> C        last of CAT  -> T

Each question is rendered with random word case ("after", "After", "AFTER"), one or two spaces
between words, an optional "?" and a random left offset within the window. The answer depends on
*which* question is asked and *where* the letter sits, so a linear model on one-hot characters
cannot read it off (see ``linear_accuracy`` in a run's summary).
"""

import string

from tinymtl.datasets.source import TextSource

LETTERS = string.ascii_uppercase
CLASSES = list(LETTERS)
QUESTIONS = ("after", "before", "first of", "last of")


def _case(word, rng):
    return (word, word.capitalize(), word.upper())[int(rng.integers(3))]


def _render(words, rng, max_length):
    text = (" " * int(rng.integers(1, 3))).join(words)
    if rng.random() < 0.5:
        text += "?"
    if len(text) > max_length:
        raise ValueError(f"max_length {max_length} is too short for {text!r}")
    offset = int(rng.integers(0, max_length - len(text) + 1))
    return " " * offset + text


def sample(rng, max_length):
    """One (text, label) pair."""
    question = QUESTIONS[int(rng.integers(len(QUESTIONS)))]
    if question in ("after", "before"):
        low, high = (0, 25) if question == "after" else (1, 26)
        letter = int(rng.integers(low, high))
        answer = letter + 1 if question == "after" else letter - 1
        words = [_case(question, rng), LETTERS[letter]]
    else:
        word = "".join(LETTERS[i] for i in rng.integers(0, 26, int(rng.integers(3, 6))))
        answer = LETTERS.index(word[0] if question == "first of" else word[-1])
        words = [_case(w, rng) for w in question.split()] + [word]
    return _render(words, rng, max_length), answer


SOURCE = TextSource("kindergarten", sample, CLASSES)
