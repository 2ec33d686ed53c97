"""Option schemas: the typed, range-checked fields that config sections and method options are
made of, and the one error they raise.

A schema is a mapping {key: Field}; ``check_section(schema, values, where)`` returns the values
with defaults filled in, or raises ``ConfigError`` with one line naming the key, the value and
what is allowed, e.g. ``training.lr = -1: expected a number > 0``. Every field carries a
``help`` text, so listings (``tinymtl methods``, docs) come from the same schema that checks.
"""

import copy
import difflib
import math

from tinymtl.errors import ConfigError


# -- schema building blocks ---------------------------------------------------------------------
class Field:
    def __init__(self, default=None, required=False, help=""):
        self.default, self.required, self.help = default, required, help

    def describe(self):
        """What the field accepts, for listings: e.g. 'a number >= 0 (default 1.5)'."""
        default = "" if self.default is None else f" (default {self.default!r})"
        return f"{self.kind()}{default}"

    def kind(self):
        return "a value"


class Int(Field):
    def __init__(self, default=None, low=None, high=None, **kw):
        super().__init__(default, **kw)
        self.low, self.high = low, high

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r}: expected an integer")
        _check_range(value, self.low, self.high, where, "an integer")
        return value

    def kind(self):
        return _range_text("an integer", self.low, self.high)


class Float(Int):
    def __init__(self, default=None, low=None, high=None, positive=False, **kw):
        super().__init__(default, low, high, **kw)
        self.positive = positive

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r}: expected a number")
        if not math.isfinite(value):  # (NaN would slip through every range check below)
            raise ConfigError(f"{where} = {value!r}: expected a finite number")
        if self.positive and not value > 0:
            raise ConfigError(f"{where} = {value!r}: expected a number > 0")
        _check_range(value, self.low, self.high, where, "a number")
        return float(value)

    def kind(self):
        return "a number > 0" if self.positive else _range_text("a number", self.low, self.high)


class Duration(Field):
    """A length of time in seconds, written as a number (seconds) or with a unit: 90, '90s',
    '45m', '1.5h', '2d'. Checked to a positive, finite number of seconds (a float)."""

    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def check(self, value, where):
        seconds = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and value.strip()[-1:] in self.UNITS:
            try:
                seconds = float(value.strip()[:-1]) * self.UNITS[value.strip()[-1]]
            except ValueError:
                seconds = None
        if seconds is None or not math.isfinite(seconds) or seconds <= 0:
            raise ConfigError(f"{where} = {value!r}: expected a duration, seconds or a number "
                              f"with s, m, h or d (e.g. 45m)")
        return seconds

    def kind(self):
        return "a duration (seconds, or e.g. 45m, 2h)"


class Bool(Field):
    def check(self, value, where):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}: expected true or false")
        return value

    def kind(self):
        return "true or false"


class Str(Field):
    def check(self, value, where):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} = {value!r}: expected a non-empty string")
        return value

    def kind(self):
        return "a string"


class Choice(Field):
    def __init__(self, choices, default=None, **kw):
        super().__init__(default, **kw)
        self.choices = tuple(choices)

    def check(self, value, where):
        if value not in self.choices:
            raise ConfigError(f"{where} = {value!r}: expected one of {', '.join(self.choices)}")
        return value

    def kind(self):
        return f"one of {', '.join(self.choices)}"


class ListOf(Field):
    def __init__(self, item, default=None, min_length=1, **kw):
        super().__init__(default, **kw)
        self.item, self.min_length = item, min_length

    def check(self, value, where):
        if not isinstance(value, list) or len(value) < self.min_length:
            raise ConfigError(f"{where} = {value!r}: expected a list of at least "
                              f"{self.min_length} item(s)")
        return [check(self.item, v, f"{where}[{k}]") for k, v in enumerate(value)]


class MapOf(Field):
    """A mapping from user-chosen names to values of one schema (e.g. tasks)."""

    def __init__(self, item, min_length=1, **kw):
        super().__init__(None, **kw)
        self.item, self.min_length = item, min_length

    def check(self, value, where):
        if not isinstance(value, dict) or len(value) < self.min_length:
            raise ConfigError(f"{where}: expected a mapping with at least {self.min_length} "
                              f"entr{'y' if self.min_length == 1 else 'ies'}")
        return {str(k): check(self.item, v, f"{where}.{k}") for k, v in value.items()}


def _range_text(kind, low, high):
    bounds = [f">= {low}"] if low is not None else []
    bounds += [f"<= {high}"] if high is not None else []
    return f"{kind} {' and '.join(bounds)}".strip()


def _check_range(value, low, high, where, kind):
    if low is not None and value < low:
        raise ConfigError(f"{where} = {value!r}: expected {kind} >= {low}")
    if high is not None and value > high:
        raise ConfigError(f"{where} = {value!r}: expected {kind} <= {high}")


def check(schema, value, where):
    if isinstance(schema, dict):
        return check_section(schema, value, where)
    return schema.check(value, where)


def check_section(schema, values, where):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {values!r}")
    unknown = sorted(set(values) - set(schema), key=str)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        close = difflib.get_close_matches(str(unknown[0]), [str(k) for k in schema], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown key {key!r}; {hint}allowed here: {', '.join(schema)}")
    result = {}
    for key, field in schema.items():
        name = f"{where}.{key}" if where else key
        if key in values and values[key] is not None:
            result[key] = check(field, values[key], name)
        elif isinstance(field, dict):
            result[key] = check_section(field, {}, name)
        elif field.required:
            raise ConfigError(f"missing key {name!r}")
        else:
            result[key] = copy.deepcopy(field.default)
    return result
