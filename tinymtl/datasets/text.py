"""One character vocabulary shared by every text task, so one encoder can read them all.

Strings become fixed-length rows of integer ids (0 is padding), ready for an ``Embedding``.
"""

import numpy as np

from tinymtl.errors import InputError, one_line

PAD = "\0"
ALPHABET = (PAD + " " + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz"
            + "0123456789" + "+-*/=?.,")
CHAR_TO_ID = {char: index for index, char in enumerate(ALPHABET)}
VOCAB_SIZE = len(ALPHABET)


def encode(texts, max_length):
    """Strings -> int64 array (len(texts), max_length), left-aligned, padded with 0.

    Raises InputError (a ValueError) naming the first string that is too long or has an
    unknown character (cut to 80 characters).
    """
    ids = np.zeros((len(texts), max_length), dtype=np.int64)
    for row, text in enumerate(texts):
        if len(text) > max_length:
            raise InputError(f"input {one_line(text)!r} is {len(text)} characters long; the "
                             f"model reads at most {max_length}")
        for column, char in enumerate(text):
            if char not in CHAR_TO_ID or char == PAD:
                raise InputError(f"input {one_line(text)!r} has the character {char!r}, which "
                                 f"is not in the vocabulary {ALPHABET[1:]!r}")
            ids[row, column] = CHAR_TO_ID[char]
    return ids


def decode(ids):
    """The inverse of ``encode`` (padding dropped)."""
    return ["".join(ALPHABET[i] for i in row if i) for row in np.asarray(ids)]
