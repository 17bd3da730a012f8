"""Characters that look like ASCII letters or digits, from Unicode's confusables data (UTS #39).

One table serves both places an impersonator swaps letters for others that look
alike: look-alike domains (``signals``' skeletons: ``xn--pple-43d.com`` is
"аpple.com" with a Cyrillic ``а``) and display names (``Jаne Doe`` with the same
``а`` must read as ``jane doe``). The data is Unicode's ``confusables.txt`` as the
``confusable-homoglyphs`` package ships it (a JSON file of confusable groups).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

__all__ = ["confusable_tables"]

_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
# What the Unicode data reads otherwise than a domain or a name shows it. The small palochka is read as "i"
# (through the dotless i), but fonts draw it full height, as "l": the homograph of apple.com registered to show
# the attack is xn--80ak6aa92e.com, "аррӏе" (IDNA lowers the capital palochka, which the data reads "l", to it).
_CHARACTERS = {"\u04cf": "l"}
# Letters drawn as one ("rn" ~ "m" is in the data; "vv" ~ "w", as common in look-alikes, is not).
_SEQUENCES = {"vv": "w"}


@functools.lru_cache(maxsize=1)
def confusable_tables() -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """(single non-ASCII character -> the lower-case ASCII letter or digit it looks like, ASCII sequences that
    render like one letter -> that letter, longest first), from the Unicode data.

    Read once per process (the data is about 1 MB of JSON).

    Examples
    --------
    >>> characters, sequences = confusable_tables()
    >>> characters["\u0430"], characters["\u03bf"], characters["\u0406"]  # Cyrillic a, Greek omicron, Cyrillic I
    ('a', 'o', 'l')
    >>> ("rn", "m") in sequences
    True
    """
    data = json.loads((resources.files("confusable_homoglyphs") / "confusables.json").read_text("utf-8"))
    chars: dict[str, str] = {}
    sequences: dict[str, str] = {}
    for key, entries in data.items():
        group = [key] + [e["c"].strip("\u200e\u200f") for e in entries]
        ascii_forms = sorted({g.lower() for g in group if g and g.isascii() and set(g.lower()) <= _DOMAIN_CHARS},
                             key=lambda g: (len(g), g))
        if not ascii_forms:
            continue
        # The letter a group reads as: one written in lower case first. A capital lowered reads as another
        # letter (the group of "l" holds "I", whose "i" took it); a group of capitals alone is lowered.
        written = sorted(g for g in group if len(g) == 1 and g in _DOMAIN_CHARS and g.isalpha())
        single = next(iter(written), next((g for g in ascii_forms if len(g) == 1 and g.isalpha()), ascii_forms[0]))
        for g in group:
            if len(g) == 1 and not g.isascii():
                chars.setdefault(g, single)
            elif len(g) > 1 and g.isascii() and g.lower() != single and len(single) == 1 \
                    and set(g.lower()) <= _DOMAIN_CHARS and g.lower().isalpha():
                sequences.setdefault(g.lower(), single)
    chars.update(_CHARACTERS)
    sequences.update(_SEQUENCES)
    # Longest sequences first, so that a fold never splits a longer one.
    ordered = tuple(sorted(sequences.items(), key=lambda kv: (-len(kv[0]), kv[0])))
    return chars, ordered
