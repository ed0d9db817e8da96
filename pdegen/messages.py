"""How a user's value appears inside a one-line error message.

Recipe values come from YAML and can be anything: a megabyte string, a list nested hundreds
deep, a value shared a billion times through aliases, a string holding a newline. `repr`
copies all of that into the message (for an alias bomb it never finishes, for a newline it
breaks the one-line promise), so messages show values through `show`, which bounds length and
depth and keeps to one line.
"""

from __future__ import annotations

import reprlib
from typing import Any

_SHORT = reprlib.Repr()
_SHORT.maxlevel = 2
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = _SHORT.maxfrozenset = 4


def show(value: Any) -> str:
    """A value as a message shows it: bounded, on one line, null and booleans in YAML's
    words (what the user wrote)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {len(str(value))} digits"  # YAML caps ints at 4300 digits
    return _SHORT.repr(value)


def field_key(name: Any) -> str:
    """A mapping key as one component of a dotted field path; keys that are not plain names
    (numbers, null, empty or long strings, control characters) are shown quoted."""
    if isinstance(name, str) and name and name.isprintable() and len(name) <= 60:
        return name
    return show(name)


def number_hint(value: Any) -> str:
    """PyYAML reads `1e-8` (no dot: YAML 1.1) as text; say so when a number field gets a
    string that Python would read as a number."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (YAML reads it as text: write numbers like 1.0e-8, with a dot)"
    return ""
