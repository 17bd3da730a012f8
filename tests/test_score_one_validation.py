"""Scorer.score_one reads a message as validation reads a one-row frame of it.

The batch path (``Scorer.score``, which validates with the graph layer) is the
reference: ``score_one(m)`` must equal ``score(pd.DataFrame([m]), level="message")``
on every signal, or raise where validation refuses ``m``. The messages here are
raw: NaN where a record has no value (what ``DataFrame.to_dict("records")``
gives), numbers where ids and times are numbers, header forms with quoted names.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from commgraph.baselines import build_baselines
from commgraph.graph import DIRECTIONS, CommGraphError, SchemaError, generate, parse_timestamps, validate
from commgraph.graph._validate import _blank_to_na
from commgraph.signals import Scorer
from commgraph.signals._scalar import parse_one
from commgraph.signals._scalar_fields import text_value, timestamp_ns

ACME = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
T5 = [{"tenant_id": "5", "own_domains": ["acme.com"]}]
WHEN = "2024-05-04T10:00:00+00:00"


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def assert_one_equals_batch(scorer: Scorer, message: dict, **options) -> dict:
    """score_one(message) against the batch path on a one-row frame of the same message."""
    one = scorer.score_one(message, **options)
    batch = scorer.score(pd.DataFrame([message]), level="message", **options).iloc[0]
    assert (one["tenant_id"], one["message_id"]) == (batch["tenant_id"], batch["message_id"])
    bad = {n: (one[n], batch[n]) for n in scorer.signal_set.names if not _same(one[n], batch[n])}
    assert not bad, bad
    return one


def assert_both_refuse(scorer: Scorer, message: dict, *words: str) -> None:
    """Validation refuses the message; score_one raises too, naming what is wrong."""
    with pytest.raises(SchemaError):
        scorer.score(pd.DataFrame([message]), level="message")
    with pytest.raises(CommGraphError) as raised:
        scorer.score_one(message)
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def _history(tenant: str, sender: str, recipients: str, configs) -> dict:
    rows = pd.DataFrame({"tenant_id": tenant, "message_id": [f"h{i}" for i in range(6)],
                         "timestamp": [f"2024-05-0{1 + i % 3}T09:00Z" for i in range(6)],
                         "sender": sender, "recipients": recipients})
    return build_baselines(validate(rows, tenants=configs), as_of="2024-05-04")


@pytest.fixture(scope="module")
def acme() -> Scorer:
    # Cy Boss writes internally (his name is an internal one); ann@vendor.com writes to cy only.
    rows = pd.DataFrame({"tenant_id": "acme", "message_id": [f"h{i}" for i in range(8)],
                         "timestamp": [f"2024-05-0{1 + i % 3}T0{i}:00Z" for i in range(8)],
                         "sender": ["Cy Boss <cy@acme.com>", "ann@vendor.com"] * 4,
                         "recipients": ["di@acme.com", "cy@acme.com"] * 4})
    return Scorer(build_baselines(validate(rows, tenants=ACME), as_of="2024-05-04"), tenant_configs=ACME)


def _message(**fields) -> dict:
    return {"tenant_id": "acme", "message_id": "x", "timestamp": WHEN, "sender": "ann@vendor.com",
            "recipients": "cy@acme.com", **fields}


# ------------------------------------------------------------------------------------ display names
@pytest.mark.parametrize("given_name", [None, float("nan"), np.nan, "", "   ", pd.NA])
def test_a_missing_or_blank_display_name_falls_back_to_the_from_header(acme, given_name) -> None:
    # An outsider using an internal name in the From header; the display name column holds no value.
    one = assert_one_equals_batch(acme, _message(sender="Cy Boss <boss@evil.com>", sender_display_name=given_name,
                                                 recipients="di@acme.com"))
    assert one["display_name_matches_internal"] == 1


@pytest.mark.parametrize("sender, address, name_matches", [
    # the spoof: the address is in the brackets, and the own address shown as the name is impersonation
    ("cy@acme.com <boss@evil.com>", "boss@evil.com", 1),
    ("Cy Boss, CEO <boss@evil.com>", "boss@evil.com", 0),
    ("'cy boss' <boss@evil.com>", "boss@evil.com", 1),  # Outlook's single quotes are not part of the name
    ('"Cy\r\n Boss" <boss@evil.com>', "boss@evil.com", 1),  # a folded header
    ("=?UTF-8?B?Q3kgQm9zcw==?= <boss@evil.com>", "boss@evil.com", 1),  # 'Cy Boss', encoded
    ("=?iso-8859-1?q?Cy_Boss?= <boss@evil.com>", "boss@evil.com", 1),
])
def test_header_forms_give_the_address_in_brackets_and_the_decoded_name(acme, sender, address, name_matches) -> None:
    one = assert_one_equals_batch(acme, _message(sender=sender, recipients="di@acme.com"))
    assert one["display_name_matches_internal"] == name_matches
    assert validate(pd.DataFrame([_message(sender=sender)]), tenants=ACME).frame["sender"].iloc[0] == address


@pytest.mark.parametrize("recipients, expected", [
    ("Board: cy@acme.com, di@acme.com;", ["cy@acme.com", "di@acme.com"]),
    ("Legal: di@acme.com;", ["di@acme.com"]),
    ("undisclosed-recipients:; cy@acme.com", ["cy@acme.com"]),
    ("Meeting 10:30 <cy@acme.com>, Legal:di@acme.com;", ["cy@acme.com", "di@acme.com"]),
    (["Board: cy@acme.com"], ["cy@acme.com"]),  # a group as one item of a list (score_one refused it)
    (["di@acme.com", "Legal: cy@acme.com;"], ["di@acme.com", "cy@acme.com"]),
])
def test_groups_give_their_members_as_validation_reads_them(acme, recipients, expected) -> None:
    assert_one_equals_batch(acme, _message(recipients=recipients))
    edges = validate(pd.DataFrame([_message(recipients=recipients)]), tenants=ACME).edges()
    assert edges["recipient"].astype(str).tolist() == expected


@pytest.mark.parametrize("sender", ['"Jose Garcia" <ceo.acme@gmail.com>', '"JOSÉ GARCÍA" <ceo.acme@gmail.com>',
                                    "=?UTF-8?Q?Jos=C3=A9_Garc=C3=ADa?= <ceo.acme@gmail.com>",
                                    # Invisible characters a mail client does not show, read as it shows them
                                    # (they were kept: a different name, no impersonation).
                                    # A zero-width space shows as nothing, inside a word too (read as a space,
                                    # it made 'jo sé garcí a').
                                    '"Jo\u200bsé Garcí\u200ba" <ceo.acme@gmail.com>',
                                    '"\ufeffJosé García" <ceo.acme@gmail.com>',
                                    '"José Gar\u00adcía" <ceo.acme@gmail.com>',
                                    '"José\u2060 García" <ceo.acme@gmail.com>',
                                    '"\u202aJosé García\u202c" <ceo.acme@gmail.com>',
                                    # Default-ignorable characters outside the format category (a combining
                                    # grapheme joiner, a variation selector, a Hangul filler), and typographic
                                    # quotes around the name: kept, they made another name.
                                    '"José\u034f García" <ceo.acme@gmail.com>',
                                    '"José García\ufe0f" <ceo.acme@gmail.com>',
                                    '"José García\u3164" <ceo.acme@gmail.com>',
                                    # Characters drawn as a blank, spaces (a braille blank and the Hangul fillers
                                    # were kept, or dropped, joining the words).
                                    '"José\u2800García\u2800" <ceo.acme@gmail.com>',
                                    '"\u2800José García" <ceo.acme@gmail.com>',
                                    '"José\u3164García" <ceo.acme@gmail.com>',
                                    '"José\uffa0García" <ceo.acme@gmail.com>',
                                    '"José\u115fGarcía" <ceo.acme@gmail.com>',
                                    '"José\u1160García" <ceo.acme@gmail.com>',
                                    # Small capitals, some outside the phonetic block (they were kept).
                                    '"\u1d0a\u1d0f\ua731\u1d07 \u0262\u1d00\u0280\u1d04\u026a\u1d00" '
                                    '<ceo.acme@gmail.com>',
                                    '"Jos\u00e9 Gar\u1d04\u00eda" <ceo.acme@gmail.com>',
                                    '\u201cJosé García\u201d <ceo.acme@gmail.com>',
                                    '\u00abJosé García\u00bb <ceo.acme@gmail.com>',
                                    # A right-to-left override shows these letters reversed: as "José García".
                                    '"\u202eaícraG ésoJ" <ceo.acme@gmail.com>',
                                    # ... whatever invisible marks or empty embeddings sit inside the override.
                                    '"\u202eaícraG ésoJ\u200f" <ceo.acme@gmail.com>',
                                    '"\u202eaícraG \u202a\u202c ésoJ\u061c" <ceo.acme@gmail.com>',
                                    # Letters of other scripts that look like Latin ones: a Cyrillic 'о' and
                                    # 'а', Cyrillic capitals, a Greek capital omicron (they made another name).
                                    '"J\u043es\u00e9 G\u0430rc\u00eda" <ceo.acme@gmail.com>',
                                    '"J\u041e\u0405\u0415 G\u0410RC\u0406A" <ceo.acme@gmail.com>',
                                    '"J\u039fSE GARCIA" <ceo.acme@gmail.com>',
                                    # The order a directory writes names in (it was another name).
                                    '"García, José" <ceo.acme@gmail.com>',
                                    '"GARCIA,JOSE" <ceo.acme@gmail.com>',
                                    # Encoded words naming a language (RFC 2231), or in UTF-16 without a
                                    # byte-order mark (big-endian): kept undecoded, or read little-endian.
                                    '=?utf-8*es?Q?Jos=C3=A9_Garc=C3=ADa?= <ceo.acme@gmail.com>',
                                    '=?UTF-16?B?AEoAbwBzAOkAIABHAGEAcgBjAO0AYQ==?= <ceo.acme@gmail.com>'])
def test_a_display_name_matches_with_or_without_its_accents(sender) -> None:
    # Accents were kept: an outsider writing as "Jose Garcia" did not match the internal "José García".
    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    history = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["h1"], "timestamp": ["2024-05-01T09:00Z"],
                                     "sender": '"José García" <jose@acme.com>', "recipients": "cy@acme.com"}),
                       tenants=tenants)
    scorer = Scorer(build_baselines(history, as_of="2024-05-04"), tenant_configs=tenants)
    message = {"tenant_id": "acme", "message_id": "x", "timestamp": "2024-05-04T10:00Z", "sender": sender,
               "recipients": "cy@acme.com"}
    one, batch = scorer.score_one(message), scorer.score(pd.DataFrame([message])).iloc[0]
    assert one["display_name_matches_internal"] == batch["display_name_matches_internal"] == 1


@pytest.mark.parametrize("internal, outsider, matches", [
    ('"Doe, Jane" <jane@acme.com>', '"Jane Doe" <ceo.acme@gmail.com>', 1),  # a directory's order inside
    ('"J\u0430ne Doe" <jane@acme.com>', '"Jane Doe" <ceo.acme@gmail.com>', 1),  # a look-alike inside
    ('"Jane Doe, Jr." <jane@acme.com>', '"Jr. Jane Doe" <ceo.acme@gmail.com>', 0),  # a suffix: not reordered
    # A name of another script that does not pass for a Latin one keeps its letters: no Latin name meets it.
    ('"\u0418\u0432\u0430\u043d \u041f\u0435\u0442\u0440\u043e\u0432" <ivan@acme.com>',
     '"Ivan Petrov" <ceo.acme@gmail.com>', 0),
    ('"\u0418\u0432\u0430\u043d \u041f\u0435\u0442\u0440\u043e\u0432" <ivan@acme.com>',
     '"\u0418\u0432\u0430\u043d \u041f\u0435\u0442\u0440\u043e\u0432" <ceo.acme@gmail.com>', 1),
])
def test_an_internal_name_meets_the_outsider_who_writes_it_otherwise(internal, outsider, matches) -> None:
    # Both sides are read alike: the internal mailbox's name written 'Last, First' (as a directory writes it) or
    # with a look-alike letter met no outsider writing 'Jane Doe'.
    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    history = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["h1"], "timestamp": ["2024-05-01T09:00Z"],
                                     "sender": internal, "recipients": "cy@acme.com"}), tenants=tenants)
    scorer = Scorer(build_baselines(history, as_of="2024-05-04"), tenant_configs=tenants)
    message = {"tenant_id": "acme", "message_id": "x", "timestamp": "2024-05-04T10:00Z", "sender": outsider,
               "recipients": "cy@acme.com"}
    one, batch = scorer.score_one(message), scorer.score(pd.DataFrame([message])).iloc[0]
    assert one["display_name_matches_internal"] == batch["display_name_matches_internal"] == matches


def test_a_given_display_name_wins_over_the_header(acme) -> None:
    one = assert_one_equals_batch(acme, _message(sender="Cy Boss <boss@evil.com>", sender_display_name=" Someone "))
    assert one["display_name_matches_internal"] == 0


# ------------------------------------------------------------------------------------ recipient lists
@pytest.mark.parametrize("column, value, expected", [
    ("to", '"Lee, Di" <di@acme.com>, cy@acme.com', ("di@acme.com", "cy@acme.com")),
    ("to", '"Lee; Di" <di@acme.com>', ("di@acme.com",)),
    ("recipients", "di@acme.com (Lee, Di); cy@acme.com", ("di@acme.com", "cy@acme.com")),
    ("recipients", ['"Lee, Di" <di@acme.com>', "cy@acme.com"], ("di@acme.com", "cy@acme.com")),
    ("recipients", ["di@acme.com", " cy@acme.com ", None, ""], ("di@acme.com", "cy@acme.com")),
    ("to", "cy@acme.com;; ,DI@acme.com, cy@acme.com", ("cy@acme.com", "di@acme.com")),
    ("to", "<cy@acme.com>", ("cy@acme.com",)),
])
def test_recipient_lists_split_as_validation_splits_them(acme, column, value, expected) -> None:
    message = _message(**{column: value})
    if column != "recipients":
        del message["recipients"]
    assert parse_one(message, lambda d: d).recipients == expected
    assert validate(pd.DataFrame([message]), tenants=ACME).edges()["recipient"].tolist() == list(expected)
    assert_one_equals_batch(acme, message)


def test_a_quoted_name_with_a_comma_keeps_its_recipient_a_first_contact(acme) -> None:
    # ann has written to cy before, never to di: splitting inside the quotes lost di and hid the first contact.
    one = assert_one_equals_batch(acme, {**_message(), "recipients": '"Lee, Di" <di@acme.com>, cy@acme.com'})
    assert one["pair_is_first_contact"] == 1


@pytest.mark.parametrize("column, value", [
    ("to", "cy@acme.com; bad address"),
    ("to", '"Lee, Di" <di@acme>, cy@acme.com'),
    ("recipients", ["cy@acme.com", "nobody"]),
    ("recipients", "cy@acme.com, a@@acme.com"),
    ("recipients", "z@192.168.3.4"),  # (an IP address for a host: score_one's shortcut took it as an address)
])
def test_an_invalid_recipient_is_refused_not_skipped(acme, column, value) -> None:
    message = _message(**{column: value})
    if column != "recipients":
        del message["recipients"]
    assert_both_refuse(acme, message, repr(column), "invalid address")


@pytest.mark.parametrize("column, value, word", [
    ("recipients", "<cy@acme.com; di@acme.com", "'<' is not closed"),  # (both kept cy alone, di lost)
    ("to", "cy@acme.com (note; di@acme.com", "'(' is not closed"),
    ("recipients", "Cy <cy@acme.com> di@acme.com", "an address after the angle brackets"),
    ("sender", 'ann@vendor.com "bob@vendor.com"', "more than one address"),
    # A quoted name after a bare address (kept as the address, the name dropped unseen) or before one.
    ("sender", 'ann@vendor.com "Ann Lee"', "text beside the address that is no comment"),
    ("recipients", 'cy@acme.com; "Di" di@acme.com', "text beside the address that is no comment"),
    # Comments nested 600 deep: both raised RecursionError (email.utils.parseaddr recursing once per level).
    ("sender", "x@evil.com " + "( " * 600 + ") " * 600, "comments nest too deeply"),
    ("to", "cy@acme.com, di@acme.com " + "( " * 600 + ") " * 600, "comments nest too deeply"),
])
def test_an_entry_cut_short_or_holding_two_addresses_is_refused_in_both_paths(acme, column, value, word) -> None:
    message = _message(**{column: value})
    if column == "to":
        del message["recipients"]
    assert_both_refuse(acme, message, repr(column), word)


@pytest.mark.parametrize("column, value", [
    ("sender", "u@xn--ab-7z3a.com"), ("sender", "u@a\u2ff0b.com"), ("sender", "Ann <u@a.XN--AB-7Z3A.com>"),
    ("recipients", "cy@acme.com; u@xn--ab-7z3a.com"), ("recipients", "u@a\u2ff0b.com"),
])
def test_an_idn_domain_is_judged_in_punycode_as_in_unicode(acme, column, value) -> None:
    # Before: score_one's shortcut for bare ASCII addresses took any punycode as valid, as validation then did;
    # validation now checks punycode as IDNA, and so does score_one.
    assert_both_refuse(acme, _message(**{column: value}), repr(column), "not a valid internationalised name")


@pytest.mark.parametrize("column, value, words", [
    ("sender", "ann\x0b@vendor.com", ["whitespace in the address"]),  # (validation's fast path took it)
    ("sender", "ann\x1f@vendor.com", ["whitespace in the address"]),
    ("sender", "cy\u200b@acme.com", ["invisible character U+200B"]),  # (both kept it, an address reading as cy's)
    ("sender", "Cy <cy\x00@acme.com>", ["control character U+0000"]),
    ("recipients", "di@acme.com; cy\u202e@acme.com", ["invisible character U+202E"]),
])
def test_a_control_or_invisible_character_in_an_address_is_refused_in_both_paths(acme, column, value, words) -> None:
    assert_both_refuse(acme, _message(**{column: value}), repr(column), *words)


@pytest.mark.parametrize("sender", ["u@xn--vi8h.ws", "u@🍕.ws", "Ann <u@XN--VI8H.ws>"])
def test_a_domain_of_symbols_is_scored_in_either_spelling(acme, sender) -> None:
    assert_one_equals_batch(acme, _message(sender=sender))


_ENTRIES = st.sampled_from(["cy@acme.com", "DI@acme.com", '"Lee, Di" <di@acme.com>', '"Lee; Di" <di@acme.com>',
                            "di@acme.com (Lee, Di)", " cy@acme.com ", "<ann@x.com>", "Ann <ann@x.com>", "", " ", "\xa0",
                            "bad address", "a@@x.com", '"Un, closed <q@x.com>', "q@x.com\t", None])


@settings(max_examples=60, deadline=None)  # validation of a one-row frame costs ~30 ms
@given(to=st.lists(_ENTRIES, min_size=1, max_size=4), cc=st.none() | st.lists(_ENTRIES, max_size=2),
       separator=st.sampled_from([";", ",", "; ", " , ", ";;"]), as_lists=st.booleans())
def test_recipient_lists_equal_validation_property(to, cc, separator, as_lists) -> None:
    def column(entries):
        if entries is None or as_lists:
            return entries
        return separator.join(e for e in entries if e is not None)

    message = _message(direction="inbound", to=column(to), cc=column(cc))
    del message["recipients"]
    try:
        expected = validate(pd.DataFrame([message]), tenants=ACME).edges()["recipient"].tolist()
    except SchemaError:
        expected = None
    try:
        got = list(parse_one(message, lambda d: d).recipients)
    except CommGraphError:
        got = None
    assert got == expected


def test_recipients_beside_typed_columns_adds_untyped_recipients(acme) -> None:
    # A recipient listed only in 'recipients' beside to/cc/bcc is still a recipient (both paths read it); one
    # listed in both keeps its type.
    message = _message(to="di@acme.com", cc=None, recipients="cy@acme.com")
    assert_one_equals_batch(acme, message)
    assert list(parse_one(message, lambda d: d).recipients) == ["di@acme.com", "cy@acme.com"]
    assert_one_equals_batch(acme, _message(to=None, recipients="cy@acme.com"))
    assert_one_equals_batch(acme, _message(to="cy@acme.com", recipients="cy@acme.com; di@acme.com"))


# ------------------------------------------------------------------------------------ tenant and message ids
@pytest.fixture(scope="module")
def five() -> Scorer:
    return Scorer({"5": _history("5", "ann@vendor.com", "cy@acme.com", T5)["5"]}, tenant_configs=T5)


@pytest.mark.parametrize("tenant", ["5", 5, " 5", "5\n", np.int64(5)])
@pytest.mark.parametrize("cold_start", [False, True])
def test_the_tenant_id_is_read_as_text_as_validation_reads_it(five, tenant, cold_start) -> None:
    message = {"tenant_id": tenant, "message_id": 7, "timestamp": WHEN, "sender": "ann@vendor.com",
               "recipients": "cy@acme.com"}
    one = assert_one_equals_batch(five, message, cold_start=cold_start)
    # Its own snapshot, not a cold start: ann is known.
    assert (one["tenant_id"], one["message_id"], one["sender_is_new"], one["sender_messages_7d"]) == ("5", "7", 0, 6)


@pytest.mark.parametrize("column", ["tenant_id", "message_id", "sender"])
@pytest.mark.parametrize("value", [None, float("nan"), "", "  "])
def test_missing_ids_and_senders_are_refused(acme, column, value) -> None:
    assert_both_refuse(acme, _message(**{column: value}), repr(column))


def test_a_sender_at_an_ip_address_is_refused_as_in_the_batch(acme) -> None:
    assert_both_refuse(acme, _message(sender="x@10.0.3.4"), "'sender'")


_TIDY_ALPHABET = st.sampled_from(list("ab5 \t\n\r\f\v") + ["\xa0", "\u2003", "\x1c", "\x85", "\u200b"])


@settings(max_examples=300, deadline=None)
@given(st.text(_TIDY_ALPHABET, max_size=6) | st.integers(-3, 3) | st.floats(allow_nan=True, width=64)
       | st.none())
def test_text_values_are_tidied_exactly_as_validation_tidies_them(value) -> None:
    expected = _blank_to_na(pd.Series([value])).iloc[0]
    assert text_value(value) == (None if pd.isna(expected) else expected)


@pytest.mark.parametrize("value", ["\xa0acme", "acme\u2003", "\x1c", "\x85a", "a\u2028", "\x0b"])
def test_text_values_with_unicode_white_space_at_an_end_are_tidied_as_validation_tidies_them(value) -> None:
    expected = _blank_to_na(pd.Series([value])).iloc[0]
    assert text_value(value) == (None if pd.isna(expected) else expected)


@pytest.mark.filterwarnings("ignore::commgraph.graph.InferredOwnDomainsWarning")
@pytest.mark.parametrize("column", ["tenant_id", "message_id"])
@pytest.mark.parametrize("value", [7.0, 7.5, 2.0**53])
def test_float_ids_are_read_as_validation_reads_them(column, value) -> None:
    message = _message(**{column: value})
    try:
        expected = validate(pd.DataFrame([message]), tenants=ACME).frame[column].iloc[0]
    except CommGraphError:
        expected = None
    try:
        got = getattr(parse_one(message, lambda d: d), column)
    except CommGraphError:
        got = None
    assert got == expected


# ------------------------------------------------------------------------------------ timestamps
_SECONDS = int(pd.Timestamp(WHEN).timestamp())


@pytest.mark.parametrize("value", [
    _SECONDS, np.int64(_SECONDS), float(_SECONDS), _SECONDS + 0.123456, np.float32(_SECONDS), _SECONDS * 1000,
    _SECONDS * 1000 + 7, _SECONDS * 1000.0 + 0.5, str(_SECONDS), f" {_SECONDS} ", f"+{_SECONDS}.25",
    WHEN, "2024-05-04T12:00+02:00", "2024-05-04 10:00:00.5Z", "20240504T100000Z", "2024-05-04T10:00:00.123456789Z",
    "Sat, 04 May 2024 10:00:00 +0000", "2024-05-04T10:00:00+00:00 (UTC)",
    dt.datetime(2024, 5, 4, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")), pd.Timestamp(WHEN),
    pd.Timestamp("2024-05-04T10:00:00.000000001Z"), pd.Timestamp(WHEN).tz_convert("America/New_York"),
])
def test_timestamps_are_read_as_validation_reads_them(acme, value) -> None:
    message = _message(timestamp=value)
    assert parse_one(message, lambda d: d).timestamp == validate(pd.DataFrame([message]),
                                                                 tenants=ACME).frame["timestamp"].iloc[0].value
    one = assert_one_equals_batch(acme, message)
    assert one["sender_days_known"] > 2  # epoch seconds are not read as nanoseconds of 1970


@pytest.mark.parametrize("value, words", [
    (0, "1990-01-01"), (-5, "1990-01-01"), (_SECONDS * 10**9, "ambiguous"), (_SECONDS * 10**6, "ambiguous"),
    (_SECONDS * 1000 * 10, "1990-01-01"), (float("inf"), "not a time"), (float("nan"), "missing"), (None, "missing"),
    ("1980-01-01T00:00:00Z", "1990-01-01"), ("2100-01-01T00:00:00Z", "2100-01-01"), ("2024-05-04T10:00", "naive"),
    (dt.datetime(2024, 5, 4, 10), "naive"), (pd.Timestamp("2024-05-04T10:00"), "naive"), (pd.NaT, "missing"),
    ("soon", "unparseable"), ("2024-13-04T10:00Z", "unparseable"), (True, "unparseable"),
    ("2024-W18-6T10:00Z", "unparseable"), ("2024-05-04", "naive"), (" 2024-05 ", "naive"),
    ("2024-5-4", "naive"), ("04.05.2024 10:00 +0000", "ambiguous_date"), ("2024-05-04T10:00:00+200", "unparseable"),
])
def test_timestamps_validation_refuses_are_refused(acme, value, words) -> None:
    assert_both_refuse(acme, _message(timestamp=value), "'timestamp'", words)


@pytest.mark.parametrize("value", [dt.datetime(2024, 5, 4, 10), pd.Timestamp("2024-05-04T10:00"),
                                   np.datetime64("2024-05-04T10:00")])
def test_a_naive_datetime_is_refused_with_validation_s_fix_as_a_naive_string_is(value) -> None:
    # A naive datetime was refused in words of its own that never named timezone=, the fix validation gives (and
    # the command line words as --timezone): explain on Parquet naive timestamps never named the option.
    with pytest.raises(CommGraphError) as naive_string:
        timestamp_ns("2024-05-04T10:00")
    with pytest.raises(CommGraphError) as naive:
        timestamp_ns(value)
    fix = "(naive_timestamp): pass timezone='<IANA zone>' saying which zone the naive timestamps are in"
    assert fix in str(naive.value) and fix in str(naive_string.value), str(naive.value)


def _batch_ns(value) -> int | None:
    parsed = parse_timestamps(pd.DataFrame([{"t": value}])["t"])
    return None if parsed.reason[0] is not None else int(parsed.values.iloc[0].value)


def _scalar_ns(value) -> int | None:
    try:
        return timestamp_ns(value)
    except CommGraphError:
        return None


_IN_RANGE = st.datetimes(min_value=dt.datetime(1985, 1, 1), max_value=dt.datetime(2105, 1, 1),
                         timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                                    dt.timezone(-dt.timedelta(hours=8))]))
_FORMATS = ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S.%f",
            "%a, %d %b %Y %H:%M:%S %z", "%Y%m%dT%H%M%S%z"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
    st.floats(min_value=6e8, max_value=4.2e9),  # epoch seconds with fractions, around the accepted range
    st.floats(min_value=6e11, max_value=4.2e12),  # and milliseconds
    st.integers(min_value=-10**15, max_value=10**15),
    st.integers(min_value=6 * 10**8, max_value=42 * 10**11).map(str),
    _IN_RANGE,
    st.tuples(_IN_RANGE, st.sampled_from(_FORMATS)).map(lambda p: p[0].strftime(p[1])),
))
def test_timestamp_ns_equals_validation_property(value) -> None:
    assert _scalar_ns(value) == _batch_ns(value)


# ------------------------------------------------------------------------------------ enumerations
def test_enum_columns_are_case_folded_and_unknown_words_refused(acme) -> None:
    assert_one_equals_batch(acme, _message(direction=" Inbound", spf="PASS", dkim="", dmarc="Fail "))
    assert_both_refuse(acme, _message(dmarc="passed"), "'dmarc'", "'passed'")


# ------------------------------------------------------------------------------------ derived direction
@pytest.mark.filterwarnings("ignore::commgraph.graph.InferredOwnDomainsWarning")
@pytest.mark.parametrize("configured", [True, False])
@pytest.mark.parametrize("tenant, sender, recipients", [
    ("acme", "ann@vendor.com", "cy@acme.com"),
    ("acme", "cy@acme.com", "di@acme.com; ann@vendor.com"),
    ("acme", "cy@mail.acme.com", "di@acme.com"),
    ("acme", "ann@vendor.com", "bob@other.com"),  # no own domain takes part: validation cannot tell
    ("newco", "a@newco.com", "b@newco.com"),  # no own domains known: inferred from the recipients
    ("newco", "a@x.com", "b@newco.com; c@hq.newco.com; d@y.com"),
    ("newco", "a@newco.com", "b@y.com; c@z.com"),
    # A message counts once per domain, and a consumer provider is never a tenant's own: outbound.
    ("newco", "a@newco.com", "b@gmail.com; c@gmail.com; d@newco.com"),
    ("newco", "a@x.com", "b@gmail.com; c@gmail.com; d@newco.com"),
])
def test_the_direction_is_derived_as_validation_derives_it(acme, configured, tenant, sender, recipients) -> None:
    scorer = acme if configured else Scorer({"acme": acme.snapshot("acme")})
    message = {"tenant_id": tenant, "message_id": "d", "timestamp": WHEN, "sender": sender, "recipients": recipients}
    try:
        expected = validate(pd.DataFrame([message]), tenants=scorer._configs()).frame["direction"].iloc[0]
    except SchemaError:
        assert_both_refuse(scorer, message, "direction")
        return
    m = parse_one(message, scorer._registrable_domain, scorer._is_own, scorer._own_domains_known)
    assert DIRECTIONS[m.direction] == expected
    assert_one_equals_batch(scorer, message, cold_start=True)


# ------------------------------------------------------------------------------------ generated mail, as records
@pytest.fixture(scope="module")
def generated():
    g = generate(tenants=2, days=10, scale=0.05, random_state=7, attack_rate=0.05)
    raw = g.messages
    cut = raw["timestamp"].quantile(0.8)
    snapshots = build_baselines(validate(raw[raw["timestamp"] < cut], tenants=g.tenants), as_of=cut)
    later = raw[raw["timestamp"] >= cut].drop(columns=["label", "labeled_at"])
    return Scorer(snapshots, tenant_configs=g.tenants), later


def _assert_records_equal_batch(scorer: Scorer, frame: pd.DataFrame) -> None:
    batch = scorer.score(frame, level="message")
    names = scorer.signal_set.names
    differ = {}
    for i, record in enumerate(frame.to_dict("records")):  # raw: NaN where a value is missing
        one = scorer.score_one(record)
        expected = batch.iloc[i]
        for n in names:
            if not _same(one[n], expected[n]):
                differ.setdefault(n, []).append((record["message_id"], one[n], expected[n]))
    assert not differ, {n: (len(v), v[:3]) for n, v in differ.items()}


def test_generated_records_score_as_in_the_batch(generated) -> None:
    scorer, later = generated
    _assert_records_equal_batch(scorer, later.sample(300, random_state=0))


def test_generated_records_with_names_only_in_the_from_header(generated) -> None:
    # What an engine gets from a header parser: the From header as the sender, no display name column value.
    scorer, later = generated
    sample = pd.concat([later[later["scenario"].notna()], later[later["scenario"].isna()].sample(150, random_state=1)])
    quoted = sample["sender_display_name"].fillna("").map(lambda n: f'"{n}" ' if n else "")
    sample = sample.assign(sender=quoted + "<" + sample["sender"] + ">", sender_display_name=float("nan"))
    assert (sample["scenario"] == "exec_impersonation").sum() >= 5
    _assert_records_equal_batch(scorer, sample)


# ------------------------------------------------------------------------------------ any mix of the above
_NAN = float("nan")
_REQUIRED = {
    "tenant_id": ["acme", " acme", "acme\t", "ACME", None, _NAN, "", "newco"],
    # Float ids (7.5) are pinned in test_float_ids_are_read_as_validation_reads_them until score_one reads them so.
    "message_id": ["m1", 7, " m ", None, _NAN],
    "timestamp": [WHEN, _SECONDS, _SECONDS + 0.5, str(_SECONDS), pd.Timestamp(WHEN), "2024-05-04T10:00",
                  "Sat, 04 May 2024 10:00:00 +0000", _SECONDS * 1000, _NAN, "2024-05-04T15:30:00.5+05:30"],
    "sender": ["ann@vendor.com", "Ann <ANN@vendor.com>", '"Boss, Cy" <boss@evil.com>', "Cy Boss <cy@acme.com>",
               " cy@acme.com", "bad", None, _NAN, "x@bücher.de"],
}
_OPTIONAL = {
    "sender_display_name": ["Cy Boss", "  ", "", _NAN, None, " cy  boss ", 5, "\xa0"],
    "recipients": ["cy@acme.com", "di@acme.com, cy@acme.com", '"Lee, Di" <di@acme.com>', ["cy@acme.com", "DI@acme.com"],
                   "bob@other.com", "", _NAN, "cy@acme.com; bad"],
    "to": ["cy@acme.com", '"Lee; Di" <di@acme.com>; x@y.com', _NAN, None],
    "cc": ["di@acme.com", _NAN, ["di@acme.com"]],
    "direction": ["inbound", "Outbound", " internal", "", _NAN, "sideways"],
    "spf": ["pass", "FAIL", " none", _NAN, "", "softfail", "bogus"],
    "dmarc": ["pass", "fail", _NAN],
}


@pytest.mark.filterwarnings("ignore::commgraph.graph.InferredOwnDomainsWarning")
@settings(max_examples=60, deadline=None)  # a one-row batch costs ~30 ms
@given(message=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in _REQUIRED.items()},
                                     optional={k: st.sampled_from(v) for k, v in _OPTIONAL.items()}),
       configured=st.booleans(), cold_start=st.booleans())
def test_any_message_scores_or_is_refused_as_in_the_batch(acme, message, configured, cold_start) -> None:
    scorer = acme if configured else Scorer({"acme": acme.snapshot("acme")})
    try:
        batch = scorer.score(pd.DataFrame([message]), level="message", cold_start=cold_start).iloc[0]
    except CommGraphError:
        with pytest.raises(CommGraphError):
            scorer.score_one(message, cold_start=cold_start)
        return
    one = scorer.score_one(message, cold_start=cold_start)
    assert (one["tenant_id"], one["message_id"]) == (batch["tenant_id"], batch["message_id"])
    assert {n: one[n] for n in scorer.signal_set.names if not _same(one[n], batch[n])} == {}


def test_a_message_that_is_not_a_mapping_is_refused_naming_what_was_given(acme) -> None:
    # A list, None or an itertuples row raised a bare TypeError from deep inside the parser.
    from collections import namedtuple

    from commgraph.graph import ConfigError
    from commgraph.signals import explain

    row = namedtuple("Pandas", "tenant_id message_id timestamp sender recipients")(*_message().values())
    for given, name in ((["x"], "list"), (None, "NoneType"), (row, "Pandas")):
        for call in (acme.score_one, lambda m: explain(m, acme)):
            with pytest.raises(ConfigError, match=f"mapping of its columns.*got {name}"):
                call(given)
    # A DataFrame row is a mapping of its columns: taken, as a dict is.
    row_result, dict_result = acme.score_one(pd.DataFrame([_message()]).iloc[0]), acme.score_one(_message())
    assert row_result.keys() == dict_result.keys() and all(_same(row_result[k], dict_result[k]) for k in row_result)
    # A one-row DataFrame is that row (its columns read whole had 'timestamp' refused as unparseable); more rows
    # are refused naming the way to score them.
    one_row = acme.score_one(pd.DataFrame([_message()]))
    assert all(_same(one_row[k], dict_result[k]) for k in dict_result)
    assert explain(pd.DataFrame([_message()]), acme).frame["value"].notna().any()
    for call in (acme.score_one, lambda m: explain(m, acme)):
        with pytest.raises(ConfigError, match="got a DataFrame of 2 rows; pass one row .* Scorer.score"):
            call(pd.DataFrame([_message(), _message()]))


def test_half_a_surrogate_pair_is_named_on_every_path() -> None:
    # score_one and explain died with a bare UnicodeEncodeError, and read_messages of records in pandas' frame.
    from commgraph.baselines._snapshot import _example
    from commgraph.graph import CommGraphError, read_messages
    from commgraph.signals import Scorer, explain

    scorer = Scorer({"acme": _example()})
    mail = {"tenant_id": "acme", "message_id": "9", "timestamp": "2024-05-04T10:00:00+00:00",
            "sender": "x\ud800@new.com", "recipients": "cy@acme.com"}
    for call in (scorer.score_one, lambda m: explain(m, scorer)):
        with pytest.raises(CommGraphError, match=r"the message's 'sender' cannot be read: .*surrogate"):
            call(mail)
    read = read_messages([mail, {**mail, "message_id": "10", "sender": "x@new.com"}], strict=False,
                         tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    assert read.frame["message_id"].tolist() == ["10"]
    assert read.rejects[["reject_column", "reject_reason"]].values.tolist() == [["sender", "invalid_encoding"]]
