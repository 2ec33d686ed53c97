"""Arithmetic: single-digit addition and subtraction, one class per answer 0-18 (19 classes).

    7+5   -> 12        7 plus 5 =   -> 12        9 - 3 = ?  -> 6        9 minus 3 -> 6

Subtraction keeps a >= b. Rendered with "+"/"plus" and "-"/"minus", optional spaces, an optional
"=" or "= ?" and a random left offset. Mixing the two operations makes the answer a three-way
interaction of operator and operands (no sum of per-character scores can produce it).
"""

from tinymtl.datasets.source import TextSource

CLASSES = [str(k) for k in range(19)]
OPERATORS = {"+": ("+", "plus"), "-": ("-", "minus")}


def sample(rng, max_length):
    """One (text, label) pair."""
    op = "+-"[int(rng.integers(2))]
    a, b = int(rng.integers(10)), int(rng.integers(10))
    if op == "-" and a < b:
        a, b = b, a
    symbol = OPERATORS[op][int(rng.integers(2))]
    spaced = symbol.isalpha() or rng.random() < 0.5
    text = f"{a} {symbol} {b}" if spaced else f"{a}{symbol}{b}"
    text += ("", "=", " =", " = ?")[int(rng.integers(4))]
    if len(text) > max_length:
        raise ValueError(f"max_length {max_length} is too short for {text!r}")
    offset = int(rng.integers(0, max_length - len(text) + 1))
    return " " * offset + text, a + b if op == "+" else a - b


SOURCE = TextSource("math", sample, CLASSES)
