"""Address, domain and display-name normalisation, vectorised over distinct values.

Mail metadata repeats a small set of addresses millions of times, so every
function here factorises its input, does the string work once per distinct value
(vectorised where the form is simple, through the standard library's
``email.utils`` where it is not) and maps the results back with ``take``.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
import unicodedata
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import Iterator

import idna
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._confusables import confusable_tables
from ._schema import STRING_DTYPE
from ._keys import stable_keys
from ._uniques import map_unique_strings, spread

__all__ = [
    "ParsedAddresses", "parse_addresses", "normalise_address", "normalise_display_name", "normalise_display_names",
    "registrable_domains", "split_address_lists", "domain_of",
]

# A bare address with nothing that needs the full RFC 5322 parser. (Controls are spelt out: RE2's \s is
# [\t\n\f\r ], so a vertical tab or \x1c-\x1f passed here while normalise_address refused them.)
_SIMPLE = r"[^\x00-\x20\x7f<>()\[\]\\,;:\"@]+@[^\x00-\x20\x7f<>()\[\]\\,;:\"@]+"
_LOCAL = re.compile(r"[^\s<>()\[\]\\,;:\"@]{1,64}")
_LABEL = r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)"
_HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})+"
_HOSTNAME_RE = re.compile(_HOSTNAME)
# A label in punycode (an A-label): the ASCII spelling of an internationalised one, checked as its Unicode is.
_A_LABEL = r"(?:^|\.)xn--"
_A_LABEL_RE = re.compile(_A_LABEL, re.IGNORECASE)
_MAX_ADDRESS = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


def _hidden_character(text: str, *, joiners: bool = False) -> str | None:
    """The first control (Cc) or invisible format character (Cf: zero-width space or joiner, soft hyphen,
    direction controls) in ``text``, or None.

    A mail client shows 'ceo\\u200b@acme.com' as ceo@acme.com: kept, it would be an address of its own that reads
    as another's; dropped, the value would be changed unseen (IDNA maps a soft hyphen in a domain to nothing).
    With ``joiners``, the zero-width joiner and non-joiner pass: in a domain IDNA 2008 allows them where a script
    needs them (Persian, Indic names) and refuses them elsewhere, in either spelling alike.

    Examples
    --------
    >>> _hidden_character("ceo\\u202e@acme.com"), _hidden_character("ceo\\x07@acme.com"), _hidden_character("jö@x.de")
    ('\\u202e', '\\x07', None)
    """
    found = _CONTROL.search(text)
    if found:
        return found.group()
    if text.isascii():
        return None
    return next((ch for ch in text if unicodedata.category(ch) == "Cf" and not (joiners and ch in _JOINERS)), None)


_JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner and joiner: IDNA 2008's CONTEXTJ characters


def _hidden_problem(ch: str, where: str) -> str:
    kind = "control" if unicodedata.category(ch) == "Cc" else "invisible"
    return f"{kind} character U+{ord(ch):04X} in the {where}"


@dataclass(frozen=True, eq=False)
class ParsedAddresses:
    """The result of :func:`parse_addresses`: one result per distinct input value.

    Rows map to distinct values through ``codes`` (-1 where the input was
    missing); the per-row properties spread the distinct results on first use,
    so a caller pays only for what it reads.

    Attributes
    ----------
    codes : numpy.ndarray of int32
        Position of each row's value in the ``unique_*`` arrays, -1 when missing.
    unique_address, unique_domain, unique_display_name, unique_problem : numpy.ndarray of object
        Normalised ``local@domain`` (``None`` when invalid), its full domain, the
        raw display name found in a header form, and why the value is invalid.
    unique_key : numpy.ndarray of uint64
        Stable key of each normalised address (0 when invalid).
    index : pandas.Index
        The input's index.
    normalised_input : pandas.Series or None
        The input itself (Arrow-backed strings) when every value was already
        normalised, so ``address`` is the input and shares its memory; else None.
    """

    codes: np.ndarray
    unique_address: np.ndarray
    unique_domain: np.ndarray
    unique_display_name: np.ndarray
    unique_problem: np.ndarray
    unique_key: np.ndarray
    index: pd.Index
    normalised_input: pd.Series | None = None

    @functools.cached_property
    def address(self) -> pd.Series:
        """Normalised address per row; missing where missing or invalid."""
        if self.normalised_input is not None:
            return self.normalised_input.rename(None)
        return spread(self.unique_address, self.codes, self.index)

    @functools.cached_property
    def domain(self) -> pd.Series:
        """Full domain part per row."""
        return spread(self.unique_domain, self.codes, self.index)

    @functools.cached_property
    def display_name(self) -> pd.Series:
        """Raw display name per row, from a header form; missing otherwise."""
        return spread(self.unique_display_name, self.codes, self.index)

    @functools.cached_property
    def problem(self) -> pd.Series:
        """Why each row's value is invalid; missing where valid or missing."""
        return spread(self.unique_problem, self.codes, self.index)

    @functools.cached_property
    def key(self) -> np.ndarray:
        """Stable key per row (0 where missing or invalid)."""
        return _take(self.unique_key, self.codes, 0)

    @functools.cached_property
    def invalid(self) -> np.ndarray:
        """Boolean mask of rows whose value was present but invalid."""
        return _take(np.array([p is not None for p in self.unique_problem], dtype=bool), self.codes, False)

    def registrable_domain(self) -> pd.Series:
        """Registrable domain per row (see :func:`registrable_domains`), computed per distinct domain."""
        registrable = registrable_domains(pd.Series(self.unique_domain, dtype=STRING_DTYPE))
        return spread(registrable.to_numpy(dtype=object, na_value=None), self.codes, self.index)

    def categorical(self, which: str = "address") -> pd.Categorical:
        """Per-row ``address`` or ``registrable_domain`` as a categorical over its distinct values."""
        if which == "address":
            per_unique = pd.Series(self.unique_address, dtype=STRING_DTYPE)
        elif which == "registrable_domain":
            per_unique = registrable_domains(pd.Series(self.unique_domain, dtype=STRING_DTYPE))
        else:
            raise ValueError(f"'which' must be 'address' or 'registrable_domain' (got {which!r})")
        unique_codes, categories = pd.factorize(per_unique, use_na_sentinel=True)
        codes = _take(unique_codes.astype(np.int32), self.codes, -1)
        return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=STRING_DTYPE))

    def domain_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-row code, distinct domains): rows share a code when they share a domain; -1 when missing."""
        unique_codes, domains = pd.factorize(pd.Series(self.unique_domain, dtype=STRING_DTYPE),
                                             use_na_sentinel=True)
        return _take(unique_codes.astype(np.int64), self.codes, -1), np.asarray(domains, dtype=object)

    def subset(self, mask: np.ndarray) -> "ParsedAddresses":
        """The rows where ``mask`` (boolean or positions) selects (distinct results shared, not recomputed)."""
        if mask.dtype == bool and mask.all():
            return self
        return ParsedAddresses(self.codes[mask], self.unique_address, self.unique_domain, self.unique_display_name,
                               self.unique_problem, self.unique_key, self.index[mask])


def _fullmatch(text: pd.Series, pattern: str) -> np.ndarray:
    """Whole-string regex match in Arrow's RE2 engine (pandas may fall back to Python's ``re``)."""
    if not len(text):
        return np.zeros(0, dtype=bool)
    matched = pc.match_substring_regex(_arrow(text), f"^(?:{pattern})$")
    return np.asarray(matched.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _is_ascii(text: pd.Series) -> np.ndarray:
    if not len(text):
        return np.zeros(0, dtype=bool)
    return np.asarray(pc.string_is_ascii(_arrow(text)).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _take(values: np.ndarray, codes: np.ndarray, missing) -> np.ndarray:
    if not len(codes) or codes.min() >= 0:  # nothing missing: one gather, no mask
        return values.take(codes)
    out = np.full(len(codes), missing, dtype=values.dtype)
    present = codes >= 0
    out[present] = values[codes[present]]
    return out


def _normalise_domain(domain: str) -> tuple[str | None, str | None]:
    """(punycode domain, None) or (None, problem).

    An internationalised domain is checked by IDNA 2008 (UTS 46 mapping) in either spelling: its A-labels are
    decoded and checked as its Unicode is, so both spellings of one domain give one result, the same reason
    when refused. A domain that IDNA 2008 refuses only for its symbols (an emoji: ``🍕.ws``) is read as IDNA
    2003 writes it, as its registry and the mail servers do: such domains are registered and send mail, and
    refusing them would leave their mail unscored.

    Examples
    --------
    >>> _normalise_domain("Bücher.de"), _normalise_domain("xn--BCHER-kva.de")
    (('xn--bcher-kva.de', None), ('xn--bcher-kva.de', None))
    >>> _normalise_domain("🍕.ws"), _normalise_domain("xn--VI8H.ws")
    (('xn--vi8h.ws', None), ('xn--vi8h.ws', None))
    >>> _normalise_domain("xn--zz.com")  # no punycode: refused, not rewritten into some other name
    (None, 'domain is not a valid internationalised name (Invalid A-label)')
    >>> _normalise_domain("x.com."), _normalise_domain("x.com..")  # the root's dot, then an empty label
    (('x.com', None), (None, 'domain is not a host name with at least two labels'))
    """
    domain = domain.strip()
    hidden = _hidden_character(domain, joiners=True)
    if hidden is not None:
        return None, _hidden_problem(hidden, "domain")
    # One trailing dot is the DNS root (a fully qualified name); a second is an empty label, refused as 'x..com' is.
    domain = domain[:-1] if domain.endswith(".") else domain
    if not domain:
        return None, "empty domain"
    if not domain.isascii() or _A_LABEL_RE.search(domain):
        domain, problem = _idna_domain(domain)
        if problem is not None:
            return None, f"domain is not a valid internationalised name ({problem})"
    domain = domain.lower()
    if not _HOSTNAME_RE.fullmatch(domain):
        return None, "domain is not a host name with at least two labels"
    if domain.rpartition(".")[2].isdigit():
        # No top-level domain is a number: an IP address (as [1.2.3.4] is), whose "registrable domain" would
        # be its last two numbers, one domain for unrelated hosts.
        return None, "domain ends in a number: an IP address or a name without its top-level domain"
    return domain, None


def _idna_domain(domain: str) -> tuple[str, None] | tuple[None, str]:
    """(ASCII spelling, None) of an internationalised domain in either spelling, or (None, IDNA's reason).

    A-labels are decoded first, so that both spellings of a domain meet the same checks and give the same reason;
    each must be the spelling its Unicode gives (``xn--zz`` is no punycode, and is not rewritten into one).
    """
    labels = domain.split(".")
    try:
        text = ".".join(label[4:].encode("ascii").decode("punycode") if label[:4].lower() == "xn--" else label
                        for label in labels)
    except UnicodeError:
        return None, "Invalid A-label"
    try:
        encoded = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        encoded = _symbols_domain(text) if type(exc) is idna.InvalidCodepoint else None
        if encoded is None:
            return None, str(exc)
    out = encoded.split(".")
    if len(out) == len(labels):  # (else a Unicode label held a full stop UTS 46 maps to '.': no position to compare)
        pairs = zip(labels, out)
    else:
        pairs = ((label, label.lower() if label.lower() in out else "") for label in labels)
    if any(label[:4].lower() == "xn--" and label.lower() != spelt for label, spelt in pairs):
        return None, "Invalid A-label"
    return encoded, None


def _symbols_domain(text: str) -> str | None:
    """The IDNA 2003 spelling of a domain IDNA 2008 refuses only for its symbols (category So: emoji, ☃), or
    None when it has another fault (an unassigned code point, a joiner out of context)."""
    # Each symbol stood in for by a letter: IDNA 2008 must then take the domain.
    try:
        idna.encode("".join("a" if unicodedata.category(ch) == "So" else ch for ch in text), uts46=True)
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def normalise_address(raw: str, *, fold_plus: bool = False) -> tuple[str | None, str | None, str | None]:
    """Normalise one address in any header form.

    Parameters
    ----------
    raw : str
        ``local@domain``, ``"Display Name" <local@domain>``, ``local@domain (comment)``...
    fold_plus : bool, default False
        Drop a ``+tag`` from the local part (``ann+news@x.com`` -> ``ann@x.com``).

    Returns
    -------
    address, display_name, problem : tuple of (str or None)
        The normalised address (``None`` when invalid), the raw display name
        (``None`` when absent) and, when invalid, a short phrase saying why.

    Examples
    --------
    >>> normalise_address('"Ann Lee" <Ann.Lee@Example.COM>')
    ('ann.lee@example.com', 'Ann Lee', None)
    >>> normalise_address("j@bücher.de (Jo)")
    ('j@xn--bcher-kva.de', 'Jo', None)
    >>> normalise_address("a b@c.com")
    (None, None, 'whitespace in the address')
    """
    text = _FOLDING.sub(" ", raw).strip()  # a header folded over lines is one line
    if not text:
        return None, None, "empty"
    if not re.search(r'[<"(]', text):
        # Bare form: check it as it stands, so the problem named is the real one.
        name, addr = "", text
    else:
        angles, unclosed, depth = _angle_addresses(text)
        if depth > _MAX_COMMENT_DEPTH:
            # parseaddr recurses once per nested comment: 'x@evil.com ( ( ( ... ) ) )', 2 KB of it, raised
            # RecursionError, failing the whole batch or tenant. No mail client writes comments this deep.
            return None, None, f"comments nest too deeply ({depth} levels; at most {_MAX_COMMENT_DEPTH})"
        if unclosed:
            # parseaddr reads '<u@x.com' or 'v@x.com (note' as an address: the entry is cut short (a list's
            # splitter ends it at the next separator) and what it held cannot be told.
            return None, None, f"{_UNCLOSED[unclosed]} is not closed"
        if len(angles) > 1:
            return None, None, f"{len(angles)} addresses in angle brackets; one entry holds one address"
        if angles:
            # The address is what the angle brackets hold, whatever the name before them looks like:
            # 'ceo@acme.com <x@evil.com>' is mail from x@evil.com (a classic display-name spoof), and
            # 'Lee, Ann <ann@x.com>' or "'bob@x.com' <bob@x.com>" are names, not addresses.
            start, end = angles[0]
            addr = text[start + 1:end - 1].strip()
            if "@" in _phrase(text[end:]):
                # 'Ann <j@x.com> k@x.com': a separator missing; a mail client reads two recipients, and the
                # second folded into the name would vanish.
                return None, None, "an address after the angle brackets; one entry holds one address"
            name = _phrase(text[:start] + " " + text[end:])
        else:
            # parseaddr keeps the first address of 'ann@x.com "bob@x.com"' (getaddresses reads two): a second '@'
            # outside comments is a second address, a separator missing.
            bare = _phrase(text)
            if bare.count("@") > 1:
                return None, None, "more than one address (a separator missing?); one entry holds one address"
            if len(bare.split()) > 1:
                # 'a@x.com "Ann"': parseaddr keeps the address and drops the rest, a name that would vanish.
                return None, None, "text beside the address that is no comment; a name goes before <address>"
            name, addr = parseaddr(text)
            if not addr:
                return None, None, "not an address"
    if re.search(r"\s", addr):
        return None, None, "whitespace in the address"
    local_part, _, domain_part = addr.rpartition("@")
    hidden = _hidden_character(local_part) or _hidden_character(domain_part, joiners=True)
    if hidden is not None:
        return None, None, _hidden_problem(hidden, "address")
    if addr.count("@") != 1:
        return None, None, "no '@'" if "@" not in addr else "more than one '@'"
    local, _, domain = addr.partition("@")
    if not local:
        return None, None, "empty local part"
    if not _LOCAL.fullmatch(local):
        return None, None, "local part has characters outside an address or is longer than 64"
    domain, problem = _normalise_domain(domain)
    if problem:
        return None, None, problem
    # One spelling per mailbox: composed (NFC) and lower-cased as Python does, whatever form arrived.
    local = unicodedata.normalize("NFC", local).lower() if not local.isascii() else local.lower()
    if fold_plus and "+" in local.strip("+"):
        local = local.split("+", 1)[0] or local
    address = f"{local}@{domain}"
    if len(address) > _MAX_ADDRESS:
        return None, None, f"longer than {_MAX_ADDRESS} characters"
    return address, (decode_encoded_words(name.strip()) or None), None


# CRLF (or LF) followed by white space: where a long header was folded.
_FOLDING = re.compile(r"\r?\n(?=[ \t])|\r?\n")


_UNCLOSED = {"<": "an angle bracket '<'", "(": "a comment's '('", '"': "a quoted string"}
# Comments nested deeper than this are refused before any parser reads them (RFC 5322 sets no limit; mail holds
# one level, rarely two).
_MAX_COMMENT_DEPTH = 20


def _angle_addresses(text: str) -> tuple[list[tuple[int, int]], str, int]:
    """(start, end) of each ``<...>`` outside quoted strings and comments (``end`` past the ``>``), the
    opening character (``<``, ``(`` or ``"``) left unclosed at the end ("" when all are closed), and how deep
    comments nest (0: none).

    Examples
    --------
    >>> _angle_addresses('"Ann" (a (b)) <ann@x.com>')
    ([(14, 25)], '', 2)
    """
    found, quoted, escaped, depth, deepest, start = [], False, False, 0, 0, -1
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")" and depth:
            depth -= 1
        elif depth:
            continue
        elif ch == '"' and start < 0:
            quoted = True
        elif ch == "<" and start < 0:
            start = i
        elif ch == ">" and start >= 0:
            found.append((start, i + 1))
            start = -1
    return found, '"' if quoted else "<" if start >= 0 else "(" if depth else "", deepest


def _phrase(text: str) -> str:
    """A display name as written around an angle address: comments dropped, quoted strings unquoted."""
    out, quoted, escaped, depth = [], False, False, 0
    for ch in text:
        if escaped:
            escaped = False
            if depth:
                continue
        elif ch == "\\":
            escaped = True
            continue
        elif quoted:
            if ch == '"':
                quoted = False
                continue
        elif ch == "(":
            depth += 1
            continue
        elif ch == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
            continue
        elif depth:
            continue
        elif ch == '"':
            quoted = True
            continue
        out.append(ch)
    return " ".join("".join(out).split())


def decode_encoded_words(text: str) -> str:
    """A header text with its RFC 2047 encoded words (``=?charset?B|Q?...?=``) decoded.

    Mail clients show the decoded name, so baselines and impersonation checks
    must compare it: the encoded form hides "John Smith, CEO" from them. Text
    that cannot be decoded (an unknown charset, broken base64) is kept as it is.

    Examples
    --------
    >>> decode_encoded_words("=?UTF-8?B?Sm9obiBTbWl0aCwgQ0VP?=")
    'John Smith, CEO'
    >>> decode_encoded_words("=?iso-8859-1?q?J=F6rg?= Meier")
    'Jörg Meier'
    >>> decode_encoded_words("=?x-unknown?B?QUJD?=")
    '=?x-unknown?B?QUJD?='
    >>> decode_encoded_words("=?utf-8*en?Q?Jane_Doe?=")  # a language tag after the charset (RFC 2231)
    'Jane Doe'
    >>> decode_encoded_words("=?UTF-16?B?AEoAbw==?=")  # UTF-16 without a byte-order mark: big-endian (RFC 2781)
    'Jo'
    """
    if "=?" not in text:
        return text
    try:
        return str(make_header([(part, _word_charset(part, charset)) for part, charset in decode_header(text)]))
    except (HeaderParseError, LookupError, UnicodeError, binascii.Error, ValueError):
        return text


# The byte orders a byte-order mark may name, and the one RFC 2781 says text without a mark is in (Python's codecs
# would read such text in the machine's order: little-endian on most, garbage for an impersonator's name).
_UNMARKED_ORDER = {"utf-16": ((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE), "utf-16-be"),
                   "utf-32": ((codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE), "utf-32-be")}


def _word_charset(data: bytes | str, charset: str | None) -> str | None:
    """The charset to decode one part of :func:`email.header.decode_header`'s output with, as mail clients do.

    An encoded word may name a language after its charset (``=?utf-8*en?Q?...?=``, RFC 2231 section 5), which is
    no part of the charset; UTF-16 and UTF-32 without a byte-order mark are big-endian (RFC 2781).

    Examples
    --------
    >>> _word_charset(b"J", "utf-8*en"), _word_charset(b"\\x00J", "utf-16")
    ('utf-8', 'utf-16-be')
    >>> _word_charset(b"\\xff\\xfeJ\\x00", "utf-16")  # a mark: the codec reads it
    'utf-16'
    """
    if charset is None:
        return None
    charset = charset.partition("*")[0] or charset
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        return charset  # (make_header refuses it, and the text is kept as written)
    marks, unmarked = _UNMARKED_ORDER.get(codec, ((), None))
    if unmarked is None or isinstance(data, str) or data.startswith(marks):
        return charset
    return unmarked


def parse_addresses(values: pd.Series, *, fold_plus: bool = False) -> ParsedAddresses:
    """Normalise a column of addresses, once per distinct value.

    Parameters
    ----------
    values : pandas.Series
        Raw addresses in any header form; missing values stay missing (they are
        not problems here: the caller decides whether the column may be empty).
        A categorical is taken as already factorised (its categories are the
        distinct values).
    fold_plus : bool, default False
        Fold plus-addressing (``ann+tag@x.com`` -> ``ann@x.com``).

    Returns
    -------
    ParsedAddresses

    Examples
    --------
    >>> p = parse_addresses(pd.Series(["Bob <BOB@Acme.com>", "a@", None, "bob@acme.com"]))
    >>> p.address.tolist()
    ['bob@acme.com', nan, nan, 'bob@acme.com']
    >>> p.problem.tolist()
    [nan, 'empty domain', nan, nan]
    >>> parse_addresses(pd.Series(["B@x.com", "b@x.com", None], dtype="category")).address.tolist()
    ['b@x.com', 'b@x.com', nan]
    """
    text = None
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        text = values.astype(STRING_DTYPE)
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
    uniq = pd.Series(uniques, dtype=STRING_DTYPE)
    stripped = uniq.str.strip()
    lowered = stripped.str.lower()
    # Fast path: bare ASCII addresses whose domain is already a host name (others are lower-cased and
    # composed one by one, as normalise_address does: Arrow's lower case differs from Python's for 'İ').
    simple = _fullmatch(lowered, _SIMPLE) & _is_ascii(stripped)
    local_part, domain_part = _split_at(lowered)
    local_ok = local_part.str.len().between(1, 64).to_numpy(dtype=bool, na_value=False)
    domain_ok = _fullmatch(domain_part, _HOSTNAME) & ~_fullmatch(domain_part, r".*\.[0-9]+")  # (no numeric TLD)
    domain_ok &= ~_fullmatch(domain_part, f".*{_A_LABEL}.*")  # (punycode is checked as IDNA, one by one)
    fast = simple & local_ok & domain_ok & (lowered.str.len() <= _MAX_ADDRESS).to_numpy(dtype=bool, na_value=False)
    if fold_plus:
        fast &= ~lowered.str.contains("+", regex=False).to_numpy(dtype=bool, na_value=False)

    n = len(uniq)
    address = np.empty(n, dtype=object)
    domain = np.empty(n, dtype=object)
    display = np.full(n, None, dtype=object)
    problem = np.full(n, None, dtype=object)
    address[fast] = lowered[fast].to_numpy()
    domain[fast] = domain_part[fast].to_numpy()
    for i in np.flatnonzero(~fast):
        address[i], display[i], problem[i] = normalise_address(uniq.iat[i], fold_plus=fold_plus)
        domain[i] = address[i].partition("@")[2] if address[i] is not None else None
    normalised = pd.Series(address, dtype=STRING_DTYPE)
    keys = stable_keys(normalised)
    # Already normal (the common case in archives): the input is the output, no new copy.
    unchanged = text is not None and bool((normalised == uniq).all())
    # int32 codes: distinct values never reach 2**31, and rows are many.
    return ParsedAddresses(codes.astype(np.int32, copy=False), address, domain, display, problem, keys, values.index,
                           text if unchanged else None)


def _split_at(addresses: pd.Series) -> tuple[pd.Series, pd.Series]:
    if not len(addresses):
        return addresses.copy(), addresses.copy()
    parts = addresses.str.partition("@")
    return parts[0].astype(STRING_DTYPE), parts[2].where(addresses.notna()).astype(STRING_DTYPE)


def domain_of(addresses: pd.Series) -> pd.Series:
    """The domain part of normalised addresses (missing stays missing).

    Examples
    --------
    >>> domain_of(pd.Series(["ann@mail.acme.com", None])).tolist()
    ['mail.acme.com', nan]
    """
    return _split_at(addresses.astype(STRING_DTYPE))[1]


@functools.lru_cache(maxsize=1)
def _public_suffix_list():
    # The list ships inside the package; constructing it never touches the network.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def registrable_domains(domains: pd.Series) -> pd.Series:
    """Registrable domain (public-suffix aware) of each domain.

    ``mail.acme.co.uk`` -> ``acme.co.uk``. A domain that is itself a public suffix,
    or has no registrable part, maps to itself. Uses the Public Suffix List shipped
    with the ``publicsuffixlist`` package (no download at run time).

    Parameters
    ----------
    domains : pandas.Series
        Normalised (lower-case, punycode) domains; missing values stay missing.

    Returns
    -------
    pandas.Series
        Arrow-backed strings aligned with ``domains``.

    Examples
    --------
    >>> registrable_domains(pd.Series(["mail.acme.co.uk", "acme.com", "co.uk", None])).tolist()
    ['acme.co.uk', 'acme.com', 'co.uk', nan]
    """
    psl = _public_suffix_list()
    return map_unique_strings(domains, lambda d: psl.privatesuffix(d) or d)


#: The form :func:`normalise_display_name` gives names, recorded with each snapshot: names of another form
#: (1: accents kept; 2: invisible format characters kept; 3: other invisible characters, typographic quotes and
#: right-to-left overrides kept; 4: letters of other scripts that look Latin and "Last, First" kept; 5: a
#: zero-width space read as a space, blank characters and small capitals kept, encoded words naming a language or
#: in UTF-16 without a byte-order mark undecoded or misread) are other keys, so a snapshot of another form is
#: built again rather than refreshed.
DISPLAY_NAME_FORM = 6


def display_names_then(form: int) -> str:
    """What display names of an earlier ``form`` kept that :data:`DISPLAY_NAME_FORM` removes, for messages.

    Examples
    --------
    >>> display_names_then(5)  # doctest: +ELLIPSIS
    "read a zero-width space as a space ('ja ne doe', now 'jane doe'), kept blank characters ..."
    """
    # (A zero-width space was kept as itself before form 3, and read as a space from then on to form 5.)
    spaced = "read a zero-width space as a space ('ja ne doe', now 'jane doe'), "
    newest = ("kept blank characters (a braille blank, U+2800, now a space) and small capitals ('ᴊᴀɴᴇ', now "
              "'jane'), and left encoded words naming a language ('=?utf-8*en?q?jane_doe?=') undecoded, those in "
              "UTF-16 without a byte-order mark read little-endian")
    if form == 5:
        return f"{spaced}{newest}"
    lookalikes = ("the letters of other scripts that look like Latin ones (a Cyrillic 'а' in 'jаne doe') and the "
                  "order 'doe, jane' (now 'jane doe')")
    if form == 4:
        return f"kept {lookalikes}; {spaced}{newest}"
    ignorable = ("the invisible characters that are no format characters (a combining grapheme joiner, a variation "
                 "selector, a Hangul filler), typographic quotes around a name, the order of letters a "
                 "right-to-left override reverses")
    if form == 3:
        return f"kept {ignorable}, {lookalikes}; {spaced}{newest}"
    invisible = "the invisible characters inside a name (a zero-width space or joiner, a soft hyphen), "
    accents = "their accents ('josé garcía', now 'jose garcia'), " if form < 2 else ""
    return f"kept {accents}{invisible}{ignorable}, {lookalikes}; {newest}"


# Default-ignorable code points (Unicode's DerivedCoreProperties) outside category Cf: a client shows none of them
# either (the combining grapheme joiner, Khmer inherent vowels, Mongolian and other variation selectors). The
# Hangul fillers, default-ignorable too, are blanks below.
_IGNORABLE = frozenset(chr(c) for lo, hi in ((0x034F, 0x034F), (0x17B4, 0x17B5), (0x180B, 0x180D), (0x180F, 0x180F),
                                               (0xFE00, 0xFE0F), (0xE0100, 0xE01EF)) for c in range(lo, hi + 1))
# Characters no white space to Python that fonts draw as a blank cell: the braille blank and the Hangul fillers
# (choseong, jungseong, compatibility and half-width). 'Jane\u2800Doe' shows as 'Jane Doe', so it reads so.
_BLANKS = frozenset("\u2800\u115f\u1160\u3164\uffa0")


_RLO, _PDF = "\u202e", "\u202c"
_PUSHES = "\u202a\u202b\u202d\u202e"  # embeddings and overrides, each closed by a pop (U+202C)


def _as_shown(text: str) -> str:
    """``text`` in the order a client shows it where a right-to-left override reverses Latin letters.

    Between U+202E (right-to-left override) and the next U+202C (pop directional formatting), or the end,
    every character is laid out right to left: "\u202eeoD enaJ" shows as "Jane Doe", so an impersonator's
    name is read so too. A segment holding right-to-left letters (Hebrew, Arabic) is left as written: those
    read right to left anyway.

    Examples
    --------
    >>> _as_shown("\u202eeoD enaJ") == "Jane Doe"
    True
    >>> _as_shown("CEO \u202eeoD enaJ\u202c (finance)") == "CEO Jane Doe (finance)"
    True
    >>> _without_invisibles(_as_shown("\u202eeoD \u202a\u202c enaJ\u200f")) == "Jane  Doe"  # nested, a mark
    True
    """
    if _RLO not in text:
        return text
    out, start = [], 0
    while (at := text.find(_RLO, start)) >= 0:
        end, depth = len(text), 1
        for i in range(at + 1, len(text)):  # the pop that closes this override: embeddings inside nest
            if text[i] in _PUSHES:
                depth += 1
            elif text[i] == _PDF:
                depth -= 1
                if not depth:
                    end = i
                    break
        segment = text[at + 1:end]
        # Right-to-left letters (not the invisible marks, U+200F, U+061C: a client shows those as nothing).
        rtl = any(unicodedata.bidirectional(ch) in ("R", "AL") and unicodedata.category(ch).startswith("L")
                  for ch in segment)
        out += [text[start:at], segment if rtl else segment[::-1]]
        start = end + 1
    out.append(text[start:])
    return "".join(out)


def _without_invisibles(text: str) -> str:
    """``text`` without the characters a mail client does not show: Unicode format characters (category Cf:
    zero-width space and joiners, soft hyphen, word joiner, byte-order mark, bidirectional controls) and the other
    default-ignorable code points (a combining grapheme joiner, variation selectors). "Jane\u2060 Doe",
    "Ja\u200bne Doe" and "Jane\u034f Doe" read as "Jane Doe", so an impersonator's name must too: a zero-width
    space shows as nothing, so it is no space either. Characters drawn as a blank (the braille blank, the Hangul
    fillers) are spaces.

    Examples
    --------
    >>> _without_invisibles("Jos\u00e9\u034f Garc\u00eda\ufe0f") == "Jos\u00e9 Garc\u00eda"
    True
    >>> _without_invisibles("Ja\u200bne\u2800Doe\u3164") == "Jane Doe "
    True
    """
    if text.isascii():
        return text
    return "".join(" " if ch in _BLANKS else ch for ch in text
                   if ch in _BLANKS or (unicodedata.category(ch) != "Cf" and ch not in _IGNORABLE))


# The quotes a name may be wrapped in, opening to closing (typographic ones as clients and word processors write
# them; full-width ones become straight under NFKC first).
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u201d": "\u201d", "\u2018": "\u2019", "\u2019": "\u2019",
           "\u201e": "\u201c", "\u201a": "\u2018", "\u00ab": "\u00bb", "\u00bb": "\u00ab", "\u2039": "\u203a",
           "\u203a": "\u2039"}


# Latin letters whose stroke or ligature Unicode does not decompose into a letter and a mark.
_LATIN_PLAIN = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H",
                              "ı": "i", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "æ": "ae", "Æ": "Ae",
                              "œ": "oe", "Œ": "Oe", "ŧ": "t", "Ŧ": "T", "ƀ": "b", "ɨ": "i"})


# Latin small capitals ('\u1d0a\u1d00\u0274\u1d07' shows as JANE in small capitals), as the letters they are:
# Unicode's confusables data reads only a few of them (U+1D0F as 'o'). Modifier small capitals reach these through
# NFKC, the capital small capital I through case folding; reversed and turned letters read as no letter.
_SMALL_CAPITALS = {"\u1d00": "a", "\u0299": "b", "\u1d04": "c", "\u1d05": "d", "\u1d07": "e", "\ua730": "f",
                   "\u0262": "g", "\u029c": "h", "\u026a": "i", "\u1d0a": "j", "\u1d0b": "k", "\u029f": "l",
                   "\u1d0d": "m", "\u0274": "n", "\u1d0f": "o", "\u1d18": "p", "\ua7af": "q", "\u0280": "r",
                   "\ua731": "s", "\u1d1b": "t", "\u1d1c": "u", "\u1d20": "v", "\u1d21": "w", "\u028f": "y",
                   "\u1d22": "z",
                   # a ligature, a bar or a stroke, as _LATIN_PLAIN reads them on other letters
                   "\u1d01": "ae", "\u0276": "oe", "\u1d03": "b", "\u1d0c": "l", "\u1d7b": "i", "\u1d7e": "u"}


def _without_accents(text: str) -> str:
    """``text`` without the accents of Latin letters ("José" -> "Jose", "Łukasz" -> "Lukasz"); the marks of
    other scripts, which write vowels and tell names apart there (Devanagari, Thai), are kept."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text.translate(_LATIN_PLAIN))
    out: list[str] = []
    latin = False  # whether the last base character is an ASCII letter
    for ch in decomposed:
        if unicodedata.combining(ch):
            if not latin:
                out.append(ch)
            continue
        latin = ch.isascii() and ch.isalpha()
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _latin_lookalikes(text: str) -> str:
    """``text`` with the letters of other scripts that look like Latin ones read as those ("J\u0430ne" with a
    Cyrillic ``\u0430`` -> "Jane"; Unicode's confusables data), where the name could pass for a Latin one: it
    holds Latin letters, or every letter it holds looks like one. A name of another script that does not
    ("\u0418\u0432\u0430\u043d", "\u0391\u03b8\u03b7\u03bd\u03ac") is kept as written. Each character
    reads as its lower-case form does (a Cyrillic capital ``\u0406`` as the ``i`` its small letter looks like),
    else as itself; marks stay on the letter they follow. Latin small capitals read as their letters.

    Examples
    --------
    >>> _latin_lookalikes("J\u0430ne D\u043e\u0435") == "Jane Doe"
    True
    >>> _latin_lookalikes("\u0392\u0406LL")  # a Greek capital beta, a Cyrillic capital I
    'biLL'
    >>> _latin_lookalikes("\u0418\u0432\u0430\u043d") == "\u0418\u0432\u0430\u043d"
    True
    >>> _latin_lookalikes("\u1d0a\u1d00\u0274\u1d07 D\u1d0f\u1d07")  # small capitals
    'jane Doe'
    """
    if text.isascii():
        return text
    characters = confusable_tables()[0]
    out: list[str] = []
    latin = False  # a Latin letter seen
    unlike = False  # a letter seen that looks like none
    for ch in unicodedata.normalize("NFD", text):
        if ch.isascii():
            latin = latin or ch.isalpha()
            out.append(ch)
            continue
        # A Latin letter beyond ASCII ('ß', 'ı') makes the name a Latin one, as ASCII letters do.
        own = ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")
        latin = latin or own
        folded = ch.casefold()
        like = (_SMALL_CAPITALS.get(folded) or characters.get(folded)) if len(folded) == 1 else None
        like = like or characters.get(ch)
        if like is None:
            unlike = unlike or (ch.isalpha() and not own)
            out.append(ch)
        else:
            out.append(like)
    return unicodedata.normalize("NFC", "".join(out)) if latin or not unlike else text


# A name written "Last, First" reads as "First Last" unless what follows the comma is a suffix of the name or of a
# company's ("Jane Doe, Jr.", "Acme, Inc.").
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "cpa", "ceo", "cfo", "cto", "coo",
                            "inc", "llc", "llp", "ltd", "corp", "co", "gmbh", "plc", "ag", "sa", "bv", "nv", "pty"})


def _first_last(text: str) -> str:
    """A normalised name written "last, first" as "first last" (the order a directory and an outsider write it
    in differ: an impersonator's "Jane Doe" must meet the internal "Doe, Jane").

    Examples
    --------
    >>> _first_last("doe, jane"), _first_last("jane doe, jr."), _first_last("a, b, c")
    ('jane doe', 'jane doe, jr.', 'a, b, c')
    """
    if text.count(",") != 1:
        return text
    last, first = (part.strip() for part in text.split(","))
    if not last or not first or first.rstrip(".").replace(".", "") in _NAME_SUFFIXES:
        return text
    return f"{first} {last}"


def normalise_display_name(name: str) -> str | None:
    """Normalise one display name: encoded words decoded, invisible format characters removed, Unicode NFKC,
    letters of other scripts that look like Latin ones read as those, accents of Latin letters removed,
    case-folded, whitespace collapsed, quotes removed, "Last, First" read as "first last".

    The scalar form of :func:`normalise_display_names`, for single-message paths.

    Examples
    --------
    >>> normalise_display_name('  "Jane   DOE" ')
    'jane doe'
    >>> normalise_display_name("José GARCÍA") == normalise_display_name("Jose Garcia") == "jose garcia"
    True
    >>> normalise_display_name("\ufeffJa\u200bne Doe") == normalise_display_name("Jane Do\u00ade") == "jane doe"
    True
    >>> blank, small_capitals = "\u2800Jane\u2800Doe", "\u1d0a\u1d00\u0274\u1d07 DOE"
    >>> normalise_display_name(blank) == normalise_display_name(small_capitals) == "jane doe"
    True
    >>> normalise_display_name("  ") is None, normalise_display_name("\u200b\u2060") is None
    (True, True)
    >>> normalise_display_name("\u201cJane Doe\u201d") == normalise_display_name("\u00abJane Doe\u00bb") == "jane doe"
    True
    >>> normalise_display_name("J\u0430ne D\u043ee") == normalise_display_name('"Doe, Jane"') == "jane doe"
    True
    """
    text = unicodedata.normalize("NFKC", _without_invisibles(_as_shown(decode_encoded_words(name))))
    text = _without_accents(_latin_lookalikes(text).casefold())  # (folded first: 'ß́' folds to 's' + 'ś')
    text = " ".join(text.split())
    # Quotes around the name, and around it again once "Last, First" is turned ('"Doe", "Jane"').
    return _unquoted(_first_last(_unquoted(text))) or None


def _unquoted(text: str) -> str:
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def normalise_display_names(names: pd.Series) -> pd.Series:
    """Normalise display names: RFC 2047 encoded words decoded, invisible format characters removed, Unicode
    NFKC, letters of other scripts that look like Latin ones read as those, accents of Latin letters removed,
    case-folded, whitespace collapsed, quotes removed, "Last, First" read as "first last".

    Parameters
    ----------
    names : pandas.Series
        Raw display names; missing or blank values become missing.

    Returns
    -------
    pandas.Series
        Arrow-backed strings aligned with ``names``.

    Examples
    --------
    >>> normalise_display_names(pd.Series(['"Jane  DOE"', "ＣＥＯ Straße", "  "])).tolist()
    ['jane doe', 'ceo strasse', nan]
    """
    return map_unique_strings(names, normalise_display_name)


def _split_quoted(text: str) -> list[str]:
    """Split on ``;`` and ``,`` outside quotes, angle brackets and comments; groups give their members.

    ``email.utils.getaddresses`` splits only on commas and returns parsed pairs,
    which would hide malformed entries; we need the raw entries to report them.
    A group (``Board: ann@x.com, bob@x.com;``, ``undisclosed-recipients:;``)
    gives its members: its name, up to the colon, is not an address (text
    holding an ``@`` before a colon is no group's name, and stays an entry).
    A quote, ``<`` or ``(`` never closed ends its entry at the next separator,
    where splitting resumes: the entry is refused as malformed, and the
    recipients after it are kept rather than swallowed into it.

    Examples
    --------
    >>> _split_quoted('"Lee, Ann" <ann@x.com>; <u@x.com, d@x.com')
    ['"Lee, Ann" <ann@x.com>', ' <u@x.com', ' d@x.com']
    """
    entries, start = [], 0
    while True:
        quoted, escaped, depth_angle, depth_paren = False, False, 0, 0
        opened = -1  # where the last quote, angle bracket or comment opened outside any other began
        for i, ch in enumerate(text[start:], start):
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"' and not depth_paren:
                if not (quoted or depth_angle):
                    opened = i
                quoted = not quoted
            elif quoted:
                pass
            elif ch == "(":
                if not (depth_angle or depth_paren):
                    opened = i
                depth_paren += 1
            elif ch == ")" and depth_paren:
                depth_paren -= 1
            elif depth_paren:
                pass  # a comment may hold '<' or '>' of its own: 'a@x.com (see <list>)'
            elif ch == "<":
                if not depth_angle:
                    opened = i
                depth_angle += 1
            elif ch == ">" and depth_angle:
                depth_angle -= 1
            elif ch in ";," and not depth_angle:
                entries.append(text[start:i])
                start = i + 1
            elif (ch == ":" and not depth_angle and "@" not in text[start:i]
                  and not (i > start and text[i - 1].isdigit() and text[i + 1:i + 2].isdigit())):
                # What came before was a group's name (an '@' says it was not, and a colon between digits,
                # 'Meeting 10:30 <a@x.com>', is a time in a name).
                start = i + 1
        if not (quoted or depth_angle or depth_paren):
            break
        # Never closed: the entry ends at the first separator after its opening, and splitting resumes there.
        separator = min((at for at in (text.find(";", opened), text.find(",", opened)) if at >= 0), default=-1)
        if separator < 0:
            break
        entries.append(text[start:separator])
        start = separator + 1
    entries.append(text[start:])
    return entries


def _arrow(text: pd.Series) -> pa.LargeStringArray:
    """The Arrow array behind an Arrow-backed string Series, as one large_string chunk."""
    array = pa.array(text.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


_SEPARATOR_BYTES = (ord(";"), ord(","))
# Rows holding these go to the careful splitter: separators may sit inside names, and a colon starts a group.
_QUOTING_BYTES = (ord('"'), ord("("), ord("<"), ord(":"))
# Byte lookup tables: one gather over the buffer instead of a comparison per byte value.
_IS_SPECIAL = np.zeros(256, dtype=bool)
_IS_SPECIAL[list(_SEPARATOR_BYTES + _QUOTING_BYTES)] = True
_IS_QUOTING = np.zeros(256, dtype=bool)
_IS_QUOTING[list(_QUOTING_BYTES)] = True
_TRIMMED = " \t\r\n;,"
# Lists are split a slice of rows at a time, so the byte mask and separator positions
# held at once stay a few MiB whatever the column's size.
_SLICE_ROWS = 1 << 17


def _row_slices(text: pd.Series) -> Iterator[tuple[int, pa.LargeStringArray]]:
    """(first row, slice) over the Arrow chunks behind ``text``; the characters are never copied."""
    array = pa.array(text.array)
    row = 0
    for chunk in array.chunks if isinstance(array, pa.ChunkedArray) else [array]:
        chunk = chunk.cast(pa.large_string())  # a new offsets buffer; the characters are shared
        for start in range(0, len(chunk), _SLICE_ROWS):
            yield row + start, chunk.slice(start, _SLICE_ROWS)
        row += len(chunk)


def _split_slice(array: pa.LargeStringArray, first_row: int, parent_dtype: type
                 ) -> tuple[np.ndarray, np.ndarray, pa.Array, np.ndarray]:
    """One slice's pieces: (parent row, index into the slice's distinct pieces, those pieces, quoted rows).

    Each piece but a row's first starts with its separator; the distinct pieces are
    trimmed later, once for all slices. Pieces of missing or quoted rows are masked
    out of the encoding, so they never become distinct values.
    """
    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + n + 1]
    buffer = array.buffers()[2]
    data = np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else np.zeros(0, np.uint8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    special = np.flatnonzero(_IS_SPECIAL[data[lo:hi]]) + lo
    quoting = _IS_QUOTING[data[special]]
    row = np.searchsorted(offsets, special, side="right") - 1
    quoted = np.zeros(n, dtype=bool)
    quoted[row[quoting]] = True
    is_separator = ~quoting & ~quoted[row]
    separators = special[is_separator]
    counts = np.bincount(row[is_separator], minlength=n)
    del special, quoting, row, is_separator
    # Each row contributes its start, then its separators (both already in order).
    row_slot = np.arange(n) + (np.cumsum(counts) - counts)
    boundaries = np.empty(n + len(separators) + 1, dtype=np.int64)
    is_start = np.zeros(len(boundaries) - 1, dtype=bool)
    is_start[row_slot] = True
    boundaries[row_slot] = offsets[:-1]
    boundaries[:-1][~is_start] = separators
    boundaries[-1] = hi
    del separators, is_start, row_slot
    parent = np.repeat(np.arange(first_row, first_row + n, dtype=parent_dtype), counts + 1)
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    usable = valid & ~quoted
    validity = None
    if not usable.all():
        keep = usable[parent - first_row]
        parent = parent[keep]
        validity = pa.py_buffer(np.packbits(keep, bitorder="little"))
    pieces = pa.LargeStringArray.from_buffers(len(boundaries) - 1, pa.py_buffer(boundaries), buffer, validity)
    encoded = pc.dictionary_encode(pieces)
    return parent, encoded.indices.drop_null().to_numpy(), encoded.dictionary, quoted & valid


def _split_lists(text: pd.Series) -> tuple[np.ndarray, np.ndarray, pa.Array, np.ndarray]:
    """Split ``;``/``,``-separated lists at the byte level, without copying the characters.

    Separators are ASCII, so in UTF-8 they never occur inside a multi-byte
    character: the pieces are new offsets over the same data buffer, dictionary
    encoded as they are found, and only the distinct pieces are trimmed (of
    separators and white space). Rows holding a quote, parenthesis or angle
    bracket may hide separators inside display names, and a colon starts a
    group; they are returned in a mask for the quote-aware splitter.

    Returns
    -------
    parent, codes, uniques, quoted
        Each piece's row (int32 while rows fit), its position in ``uniques``
        (int32; distinct trimmed pieces in order of first appearance, blanks
        included), and the rows left to the quote-aware splitter.
    """
    parent_dtype = np.int32 if len(text) < 2**31 else np.int64
    parents, indices, dictionaries, quoted = [], [], [], []
    for first_row, array in _row_slices(text):
        parent, index, dictionary, slice_quoted = _split_slice(array, first_row, parent_dtype)
        parents.append(parent)
        indices.append(index)
        dictionaries.append(dictionary)
        quoted.append(slice_quoted)
    if not dictionaries:
        return (np.zeros(0, parent_dtype), np.zeros(0, np.int32), pa.array([], pa.large_string()),
                np.zeros(len(text), dtype=bool))
    # Trimming maps pieces that differ only in separators or white space to one value;
    # encoding the trimmed pieces of every slice together gives one set of codes.
    trimmed = pc.dictionary_encode(pc.utf8_trim(pa.concat_arrays(dictionaries), characters=_TRIMMED))
    remap = trimmed.indices.to_numpy()
    starts = np.cumsum([0] + [len(d) for d in dictionaries[:-1]])
    codes = [remap[start + index] for start, index in zip(starts, indices)]
    del indices
    return (parents[0] if len(parents) == 1 else np.concatenate(parents),
            codes[0] if len(codes) == 1 else np.concatenate(codes), trimmed.dictionary, np.concatenate(quoted))


def _entries(parent: np.ndarray, codes: np.ndarray, uniques: pa.Array) -> tuple[np.ndarray, pd.Series]:
    """Entries as a categorical over their distinct values, blank entries left out."""
    blank = np.asarray(pc.equal(pc.binary_length(uniques), 0).to_numpy(zero_copy_only=False), dtype=bool)
    if blank.any():
        renumber = np.cumsum(~blank, dtype=np.int32) - 1
        renumber[blank] = -1
        codes = renumber[codes]
        keep = codes >= 0
        parent, codes = parent[keep], codes[keep]
        uniques = uniques.filter(pa.array(~blank))
    categories = pd.Index(pd.array(uniques, dtype=STRING_DTYPE))
    return parent, pd.Series(pd.Categorical.from_codes(codes, categories=categories, validate=False))


def split_address_lists(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Explode address lists into one entry per address.

    Parameters
    ----------
    values : pandas.Series
        Each value a string of addresses separated by ``;`` or ``,`` (quoted display
        names may contain either), a list of addresses, or missing.

    Returns
    -------
    parent : numpy.ndarray of int32 (int64 beyond 2**31 rows)
        Position in ``values`` of each entry.
    entries : pandas.Series
        The raw entries, stripped, as a categorical over their distinct values
        (in order of first appearance): 4 bytes an entry instead of a copy of
        its characters, and already factorised for :func:`parse_addresses`.
        Blank entries are left out.

    Examples
    --------
    >>> parent, entries = split_address_lists(pd.Series(["a@x.com; b@y.com", None, '"Lee, Ann" <ann@z.com>']))
    >>> parent.tolist(), entries.tolist()
    ([0, 0, 2], ['a@x.com', 'b@y.com', '"Lee, Ann" <ann@z.com>'])
    """
    n = len(values)
    parent_dtype = np.int32 if n < 2**31 else np.int64
    if n == 0:
        no_entries = pd.Categorical([], categories=pd.Index([], dtype=STRING_DTYPE))
        return np.zeros(0, dtype=parent_dtype), pd.Series(no_entries)
    if isinstance(values.dtype, pd.ArrowDtype) and (pa.types.is_list(values.dtype.pyarrow_dtype)
                                                    or pa.types.is_large_list(values.dtype.pyarrow_dtype)):
        # An Arrow list column (pandas' pyarrow dtype backend): a list of addresses per row, as below.
        values = pd.Series(values.to_numpy(dtype=object, na_value=None), index=values.index, dtype=object)
    if values.dtype == object and values.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
        # List-valued column (from JSON, Parquet lists or Python records).
        flat = values.reset_index(drop=True).explode()
        parent = flat.index.to_numpy(dtype=parent_dtype)
        entries = flat.astype(STRING_DTYPE)
        # Strings inside a list may still hold several addresses.
        if entries.str.contains(r"[;,:]", regex=True, na=False).any():
            sub_parent, entries = split_address_lists(entries.reset_index(drop=True))
            return parent[sub_parent], entries
        entries = entries.str.strip()
        keep = (entries.notna() & (entries.str.len() > 0)).to_numpy(dtype=bool)
        codes, uniques = pd.factorize(entries[keep], use_na_sentinel=True)
        return parent[keep], pd.Series(pd.Categorical.from_codes(
            codes.astype(np.int32), categories=pd.Index(uniques, dtype=STRING_DTYPE), validate=False))
    text = values.astype(STRING_DTYPE).reset_index(drop=True)
    parent, codes, uniques, quoted = _split_lists(text)
    if quoted.any():
        # Quoted display names may hold separators: the careful splitter, row by row.
        extra = text[quoted].map(_split_quoted).explode()
        extra_text = _arrow(extra.astype(STRING_DTYPE).str.strip())
        both = pc.dictionary_encode(pa.concat_arrays([uniques, extra_text]))
        remap = both.indices.to_numpy()
        parent = np.concatenate([parent, extra.index.to_numpy(dtype=parent_dtype)])
        codes = np.concatenate([remap[codes], remap[len(uniques):]])
        order = np.argsort(parent, kind="stable")
        parent, codes = parent[order], codes[order]
        # Distinct values in order of first appearance, as when there is no quoted row.
        seen = pd.unique(codes)
        renumber = np.empty(len(both.dictionary), dtype=np.int32)
        renumber[seen] = np.arange(len(seen), dtype=np.int32)
        codes, uniques = renumber[codes], both.dictionary.take(pa.array(seen))
    return _entries(parent, codes, uniques)
