"""Hand-built cases for the built-in signals, and the provider / SignalSet contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import build_baselines
from commgraph.graph import CommGraphError, ConfigError, validate
from commgraph.signals import (
    DEFAULT_PROVIDERS, SignalProvider, SignalSet, SignalSpec, freemail_domains, provider_registry, register_provider,
    skeleton,
)

TENANTS = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
AS_OF = "2024-05-20"


def _history() -> pd.DataFrame:
    rows = []

    def add(day, sender, recipients, name=None, **auth):
        rows.append({"tenant_id": "acme", "message_id": f"h{len(rows)}", "timestamp": f"2024-05-{day:02d}T10:00Z",
                     "sender": sender, "recipients": recipients, "sender_display_name": name,
                     "spf": auth.get("spf", "pass"), "dkim": auth.get("dkim", "pass"),
                     "dmarc": auth.get("dmarc", "pass")})

    for day in range(1, 11):
        add(day, "bob@vendor.com", "cy@acme.com", "Bob Vendor")
        add(day, "ann@acme.com", "cy@acme.com", "Ann Lee")
        add(day, "spam@bulk.com", "cy@acme.com", "Bulk", spf="fail", dkim="fail", dmarc="fail")
    for day in range(1, 6):
        add(day, "good@partner.com", "cy@acme.com", "Good Partner")
    add(3, "cy@acme.com", "bob@vendor.com", "Cy")
    add(4, "cy@acme.com", "sales@supplier.com", "Cy")
    add(5, "cy@acme.com", "ceo@microsoft.com", "Cy")
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def snapshots():
    return build_baselines(validate(_history(), tenants=TENANTS), as_of=AS_OF)


def score(snapshots, **row) -> pd.Series:
    base = {"tenant_id": "acme", "message_id": "b1", "timestamp": "2024-05-20T10:00Z", "recipients": "cy@acme.com"}
    base.update(row)
    batch = validate(pd.DataFrame([base]), tenants=TENANTS)
    return SignalSet().compute(batch, snapshots, level="message").iloc[0]


def test_first_contact_of_a_known_sender(snapshots) -> None:
    s = score(snapshots, sender="bob@vendor.com", recipients="di@acme.com")
    assert s["sender_is_new"] == 0 and s["sender_messages_30d"] == 10 and s["pair_is_first_contact"] == 1
    assert s["pair_messages"] == 0 and math.isnan(s["pair_days_since_last"])
    known = score(snapshots, sender="bob@vendor.com")
    assert known["pair_is_first_contact"] == 0 and known["pair_messages"] == 10
    assert known["pair_recipient_replied"] == 1 and known["pair_days_since_last"] == pytest.approx(10.0)
    assert known["sender_days_known"] == pytest.approx(19.0)


def test_first_reply_to_a_solicited_address(snapshots) -> None:
    s = score(snapshots, sender="sales@supplier.com")
    assert s["sender_is_new"] == 1 and s["pair_is_first_contact"] == 1
    assert s["sender_solicited_messages"] == 1 and s["sender_days_since_solicited"] == pytest.approx(16.0)
    assert s["pair_recipient_replied"] == 1  # cy wrote to this address first


def test_impersonation_of_an_internal_display_name(snapshots) -> None:
    s = score(snapshots, sender='"Ann Lee" <ann.lee@gmail.com>')
    assert s["display_name_matches_internal"] == 1 and s["display_name_is_new_for_address"] == 1
    assert s["domain_is_freemail"] == 1 and s["domain_is_new"] == 1
    real = score(snapshots, sender='"Ann Lee" <ann@acme.com>', recipients="cy@acme.com")
    assert real["display_name_matches_internal"] == 0 and real["display_name_is_new_for_address"] == 0
    assert real["display_name_address_days"] == 10
    unnamed = score(snapshots, sender="ann.lee@gmail.com")
    assert unnamed["display_name_matches_internal"] == 0 and unnamed["display_name_is_new_for_address"] == 0


@pytest.mark.parametrize("sender", ["x@rnicrosoft.com", "x@micros0ft.com", "x@xn--mcrosoft-thh.com"])
def test_homoglyph_of_a_known_contact_domain(snapshots, sender) -> None:
    s = score(snapshots, sender=sender)
    assert s["lookalike_domain_distance"] <= 1 and s["lookalike_domain_is_close"] == 1


def test_cyrillic_lookalike_of_the_own_domain(snapshots) -> None:
    assert skeleton("xn--cme-5cd.com") == "acme.com"  # Cyrillic a, then "cme.com"
    s = score(snapshots, sender="ceo@аcme.com", direction="inbound")
    assert s["lookalike_domain_distance"] == 0 and s["lookalike_domain_is_close"] == 1


@pytest.mark.parametrize("domain, reads", [
    ("xn--80ak6aa92e.com", "apple.com"),  # аррӏе.com: the small palochka, drawn as "l"
    ("app\u2113e.com", "apple.com"), ("app\u217ce.com", "apple.com"), ("app\u01c0e.com", "apple.com"),
    ("vvells.com", "wells.com"), ("rnicrosoft.com", "microsoft.com"), ("\u0456nfo.com", "info.com"),
])
def test_characters_drawn_as_l_read_as_l(domain, reads) -> None:
    # Every character Unicode lists with "l" read as "i": the group of "l" holds a capital "I", whose lower
    # case took it; a homograph of an "l" then stood 1 edit away per letter, and four made it no look-alike.
    assert skeleton(domain) == reads


def test_a_homograph_of_a_known_contact_with_every_l_replaced_is_close() -> None:
    from commgraph.signals import Scorer

    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    history = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["h1", "h2"], "sender": "bob@acme.com",
                                     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z"],
                                     "recipients": "ann@allwellhealth.com"}), tenants=tenants)
    scorer = Scorer(build_baselines(history, as_of="2024-05-04"), tenant_configs=tenants)
    message = {"tenant_id": "acme", "message_id": "x", "timestamp": "2024-05-04T10:00Z",
               "sender": "eve@a\u04cf\u04cfwe\u04cf\u04cfhealth.com", "recipients": "bob@acme.com"}
    one, batch = scorer.score_one(message), scorer.score(pd.DataFrame([message])).iloc[0]
    for s in (one, batch):
        assert s["lookalike_domain_distance"] == 0 and s["lookalike_domain_is_close"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**15, 10**15), st.one_of(st.none(), st.integers(-10**15, 10**15))),
                max_size=30), st.sampled_from([0.0, float("nan")]))
def test_days_between_equals_pandas_timedeltas(rows, never) -> None:
    # Days from a time to each message (at least 0), ``never`` where there is no time: against pandas' own
    # timedelta arithmetic on nullable datetimes.
    from commgraph.signals._builtin_sender import days_between

    ts = np.array([r[0] for r in rows], dtype=np.int64)
    then = np.array([np.iinfo(np.int64).min if r[1] is None else r[1] for r in rows], dtype=np.int64)
    got = days_between(ts, then, never=never)
    delta = pd.to_datetime(pd.Series(ts)) - pd.to_datetime(pd.Series([r[1] for r in rows], dtype="Int64"))
    expected = (delta.clip(lower=pd.Timedelta(0)) / pd.Timedelta(days=1)).fillna(never).to_numpy(np.float64)
    assert got.dtype == np.float32
    assert np.array_equal(got, expected.astype(np.float32), equal_nan=True)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcilmnorvwxyzAMNOX019-.", max_size=24))
def test_skeleton_of_plain_ascii_equals_the_character_walk(domain) -> None:
    # ASCII domains skip the per-character walk (decode, decompose, map): the same text, sequences folded.
    from commgraph.signals._lookalike import _characters, _tables

    expected = _characters(domain)
    for seq, letter in _tables()[1]:
        if seq in expected:
            expected = expected.replace(seq, letter)
    assert skeleton(domain) == expected


def test_the_exact_domain_and_an_unrelated_one_are_not_lookalikes(snapshots) -> None:
    own = score(snapshots, sender="ceo@microsoft.com")
    assert own["lookalike_domain_is_close"] == 0  # itself is excluded; the tenant writes to it
    far = score(snapshots, sender="x@completely-different.org")
    assert far["lookalike_domain_distance"] == 8 and far["lookalike_domain_is_close"] == 0


def test_a_sender_that_always_fails_dmarc_is_not_a_deviation(snapshots) -> None:
    s = score(snapshots, sender="spam@bulk.com", spf="fail", dkim="fail", dmarc="fail")
    assert s["auth_deviation"] == 0 and s["sender_auth_fail_rate"] == pytest.approx(1.0)
    good = score(snapshots, sender="good@partner.com", dmarc="fail")
    assert good["auth_deviation"] == 1 and good["sender_auth_fail_rate"] == 0.0
    new = score(snapshots, sender="who@nowhere.com", dmarc="fail")
    assert new["auth_deviation"] == 0


def test_hour_surprise_is_lower_at_the_usual_hour(snapshots) -> None:
    usual = score(snapshots, sender="bob@vendor.com", timestamp="2024-05-20T10:00Z")
    odd = score(snapshots, sender="bob@vendor.com", timestamp="2024-05-20T03:00Z")
    assert usual["sender_hour_surprise"] < odd["sender_hour_surprise"]


def test_unknown_everything_gets_documented_defaults(snapshots) -> None:
    s = score(snapshots, sender="who@nowhere.example", recipients="nobody@acme.com")
    specs = {sp.name: sp for sp in SignalSet().specs}
    snap = snapshots["acme"]
    for name, spec in specs.items():
        if spec.default is None:
            assert not math.isnan(s[name]), name
        elif name not in ("domain_is_freemail", "lookalike_domain_distance", "lookalike_domain_is_close"):
            expected = spec.default
            assert (math.isnan(expected) and math.isnan(s[name])) or s[name] == expected, name
    prior = snap.priors["sender"]
    assert s["sender_safe_likelihood"] == pytest.approx(prior["alpha"] / (prior["alpha"] + prior["beta"]), rel=1e-6)


def test_missing_tenant_is_named_unless_cold_start(snapshots) -> None:
    batch = validate(pd.DataFrame({"tenant_id": ["acme", "globex"], "message_id": ["1", "2"],
                                   "timestamp": "2024-05-20T10:00Z", "sender": "x@y.com",
                                   "recipients": ["cy@acme.com", "z@globex.com"], "direction": "inbound"}))
    with pytest.raises(CommGraphError, match="'globex'"):
        SignalSet().compute(batch, snapshots)
    out = SignalSet().compute(batch, snapshots, cold_start=True)
    g = snapshots["acme"].priors["global"]["sender"]
    assert out.loc[1, "sender_is_new"] == 1
    assert out.loc[1, "sender_safe_likelihood"] == pytest.approx(g["alpha"] / (g["alpha"] + g["beta"]), rel=1e-6)


def test_tenants_are_scored_against_their_own_snapshot() -> None:
    rows = pd.DataFrame({"tenant_id": ["a", "b", "b"], "message_id": ["1", "2", "3"],
                         "timestamp": ["2024-05-01T10:00Z"] * 3, "sender": "x@out.com",
                         "recipients": ["u@a.com", "v@b.com", "v@b.com"], "direction": "inbound"})
    snaps = build_baselines(validate(rows), as_of="2024-05-02")
    batch = validate(pd.DataFrame({"tenant_id": ["b", "a", "b"], "message_id": ["4", "5", "6"],
                                   "timestamp": "2024-05-03T10:00Z", "sender": "x@out.com",
                                   "recipients": ["v@b.com", "u@a.com", "w@b.com"], "direction": "inbound"}))
    out = SignalSet().compute(batch, snaps)
    assert out["sender_messages_7d"].tolist() == [2, 1, 2]
    assert out["pair_messages"].tolist() == [2, 1, 0]


def test_message_level_aggregates_by_each_rule(snapshots) -> None:
    batch = validate(pd.DataFrame([{"tenant_id": "acme", "message_id": "m", "timestamp": "2024-05-20T10:00Z",
                                    "sender": "bob@vendor.com", "recipients": "cy@acme.com; di@acme.com"}]),
                     tenants=TENANTS)
    edges = SignalSet().compute(batch, snapshots)
    msg = SignalSet().compute(batch, snapshots, level="message").iloc[0]
    assert msg["pair_messages"] == edges["pair_messages"].min() == 0
    assert msg["pair_is_first_contact"] == 1 and msg["pair_days_since_last"] == pytest.approx(10.0)
    assert msg["recipient_inbound_30d"] == pytest.approx(edges["recipient_inbound_30d"].mean())


def test_output_contract(snapshots) -> None:
    batch = validate(_history().head(5), tenants=TENANTS)
    s = SignalSet()
    out = s.compute(batch, snapshots)
    specs = {sp.name: sp for sp in s.specs}
    assert list(out.columns[3:]) == s.names and len(s.names) == 35
    for name in s.names:
        assert str(out[name].dtype) == specs[name].dtype
    msg = s.compute(batch, snapshots, level="message")
    assert msg.index.equals(batch.frame.index)
    for name in s.names:
        assert str(msg[name].dtype) == specs[name].message_dtype
    X, names = s.compute_array(batch, snapshots, level="message")
    assert X.dtype == np.float32 and names == s.names
    np.testing.assert_array_equal(X, msg[s.names].to_numpy(np.float32))
    assert [p.name for p in s.providers] == list(DEFAULT_PROVIDERS)
    assert set(s.describe()["signal"]) == set(s.names)


def test_frame_from_columns_filled_in_place(snapshots) -> None:
    # Columns from empty_columns become the frame's blocks without a copy; one put in place of a row is
    # copied as usual; either way the frame equals the one built from plain arrays.
    batch = validate(_history().head(7), tenants=TENANTS)
    s = SignalSet()
    plain = s.compute(batch, snapshots)
    filled = s.empty_columns(len(plain), {spec.name: spec.dtype for spec in s.specs})
    for name in s.names:
        filled[name][:] = plain[name].to_numpy()
    out = s.frame(batch, filled)
    pd.testing.assert_frame_equal(out, plain)
    assert np.shares_memory(out["pair_messages"].to_numpy(), filled["pair_messages"])
    filled["pair_messages"] = filled["pair_messages"] + 1
    again = s.frame(batch, filled)
    assert (again["pair_messages"] == plain["pair_messages"] + 1).all()
    assert again.drop(columns="pair_messages").equals(plain.drop(columns="pair_messages"))
    assert not np.shares_memory(again["sender_messages_7d"].to_numpy(), filled["sender_messages_7d"])


def test_order_invariance(snapshots) -> None:
    frame = _history().sample(frac=1.0, random_state=1).head(20)
    a = SignalSet().compute(validate(frame, tenants=TENANTS), snapshots, level="message")
    b = SignalSet().compute(validate(frame.iloc[::-1], tenants=TENANTS), snapshots, level="message")
    pd.testing.assert_frame_equal(a, b.loc[a.index])


def test_custom_provider_plugs_in(snapshots) -> None:
    @register_provider
    class RecipientCount(SignalProvider):
        name = "recipient_count_test"
        level = "message"
        signals = (SignalSpec("n_recipients_in_message", "int32", "Recipients of this message.", "count"),)

        def compute(self, batch, view):
            return {"n_recipients_in_message": np.bincount(batch.edge_message, minlength=batch.n_messages)}

    assert provider_registry()["recipient_count_test"] is RecipientCount
    s = SignalSet(["pair", "recipient_count_test"])
    batch = validate(pd.DataFrame([{"tenant_id": "acme", "message_id": "m", "timestamp": "2024-05-20T10:00Z",
                                    "sender": "bob@vendor.com", "recipients": "cy@acme.com; di@acme.com"}]),
                     tenants=TENANTS)
    assert s.compute(batch, snapshots)["n_recipients_in_message"].tolist() == [2, 2]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="'nope'"):
        SignalSet(["sender", "nope"])
    with pytest.raises(ConfigError, match="unique"):
        SignalSet(["sender", "sender"])
    with pytest.raises(ConfigError, match="'level'"):
        SignalSet().compute_columns(None, {}, level="tenant")


def test_a_single_name_or_provider_is_refused_saying_to_pass_a_list() -> None:
    # SignalSet("sender") read the name letter by letter: "... registered providers (...). Got 's' instead."
    with pytest.raises(ConfigError, match=r"Got 'sender' instead\. Pass a list, even of one: "
                                          r"SignalSet\(\['sender'\]\)"):
        SignalSet("sender")
    with pytest.raises(ConfigError, match=r"Pass a list, even of one: SignalSet\(\[provider\]\)"):
        SignalSet(SignalSet(["pair"]).providers[0])  # (it was "object is not iterable", a TypeError)
    assert SignalSet(["sender"]).names == SignalSet(("sender",)).names


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["gmail.com", "outlook.com", "acme.com", "GMAIL.COM", "gmail.co", ""]), max_size=8),
       st.lists(st.integers(-1, 7), max_size=20))
def test_freemail_flags_from_shared_domain_flags_equal_a_lookup_per_message(names, codes):
    # Backfill looks a batch's domains up once and hands the flags to every tenant: the same flags as a lookup
    # per message in the provider list (a negative code: no domain, 0).
    from commgraph.signals._freemail import freemail_domain_flags, freemail_flags

    domains = np.array(names, dtype=object)
    codes = np.array([c for c in codes if c < len(names)], dtype=np.int64)
    expected = [int(c >= 0 and names[c] in freemail_domains()) for c in codes.tolist()]
    shared = freemail_domain_flags(domains)
    assert shared.dtype == np.int8 and shared.tolist() == [int(n in freemail_domains()) for n in names]
    assert freemail_flags(codes, domains, shared).tolist() == expected
    assert freemail_flags(codes, domains).tolist() == expected


def _provider(level: str, dtype: str, returns):
    """A user's provider of one column ``v`` whose compute returns ``returns(batch)``."""
    class Custom(SignalProvider):
        name = "custom"
        signals = (SignalSpec("v", dtype, "a user's column.", "count"),)

        def compute(self, batch, view):
            return returns(batch)

    Custom.level = level
    return Custom()


@pytest.mark.parametrize("level", ["edge", "message"])
def test_a_users_provider_is_held_to_what_it_declares(level) -> None:
    # Its output was taken as given: one value per recipient from a message-level provider was indexed into
    # wrong values at edge level, one value broadcast to every message, NaN cast to -2147483648, and a
    # missing column a bare KeyError.
    tenants = [{"tenant_id": t, "own_domains": [f"{t}.com"]} for t in ("a", "b")]
    mail = validate(pd.DataFrame({"tenant_id": ["a", "a", "b"], "message_id": ["1", "2", "3"],
                                  "timestamp": ["2025-01-01T00:00Z", "2025-01-02T00:00Z", "2025-01-02T00:00Z"],
                                  "sender": "x@v.com", "recipients": ["p@a.com;q@a.com", "p@a.com", "r@b.com"]}),
                    tenants=tenants)
    snapshots = build_baselines(mail, as_of="2025-01-03")
    cases = [
        (_provider("message", "int32", lambda b: {"v": np.arange(b.n_edges)}), "one value per message"),
        (_provider("message", "int32", lambda b: {"v": np.full(1, 7)}), "one value per message"),
        (_provider("edge", "int32", lambda b: {"v": np.full(b.n_edges, np.nan)}), "NaN, infinite or fractional"),
        (_provider("edge", "int8", lambda b: {"v": np.full(b.n_edges, 0.7)}), "NaN, infinite or fractional"),
        (_provider("message", "int8", lambda b: {"v": np.full(b.n_messages, 300)}), "from 300 to 300"),
        (_provider("message", "int32", lambda b: {"w": np.zeros(b.n_messages)}), r"declares \['v'\]"),
        (_provider("message", "int32", lambda b: np.zeros(b.n_messages)), "must return a mapping"),
    ]
    for provider, said in cases:
        with pytest.raises(ConfigError, match=said):
            SignalSet([provider]).compute(mail, snapshots, level=level)
    fine = _provider("message", "int32", lambda b: {"v": np.arange(b.n_messages, dtype=np.float64)})
    assert SignalSet([fine]).compute(mail, snapshots, level=level)["v"].dtype == np.int32
    with pytest.raises(ConfigError, match="level 'recipient'"):
        SignalSet([_provider("recipient", "int32", lambda b: {})])

    class Named(SignalProvider):
        name, level = "named", "edge"
        signals = (SignalSpec("recipient", "int8", "a column named like an identifier.", "flag"),)

        def compute(self, batch, view):
            return {"recipient": np.zeros(batch.n_edges, np.int8)}

    with pytest.raises(ConfigError, match="names of the identifier columns"):
        SignalSet([Named()])


def test_a_shipped_providers_name_is_refused_to_any_other_class() -> None:
    # The exemption for a class redefined under its own name (a notebook cell run again) let a user's subclass
    # named like a built-in take the built-in's place without a word: every default SignalSet then ran it.
    from commgraph.signals import PairSignals, SenderSignals

    with pytest.raises(ConfigError, match="cannot register .*SenderSignals as provider 'sender'.*name of its own"):
        @register_provider
        class SenderSignals(SenderSignals):  # noqa: F811  (named like the built-in on purpose)
            signals = SenderSignals.signals + (SignalSpec("sender_is_vip", "int8", "A VIP sender.", "flag"),)

    with pytest.raises(ConfigError, match="provider 'pair'"):
        @register_provider
        class MyPairs(SignalProvider):
            name = "pair"

    registry = provider_registry()
    assert [registry[name].__module__.startswith("commgraph.signals._builtin_") for name in DEFAULT_PROVIDERS] \
        == [True] * len(DEFAULT_PROVIDERS)
    assert register_provider(PairSignals) is PairSignals and provider_registry()["pair"] is PairSignals

    # A user's own class redefined under its own name still replaces the earlier one.
    @register_provider
    class Mine(SignalProvider):
        name = "mine_redefined_test"

    first = Mine

    @register_provider
    class Mine(SignalProvider):  # noqa: F811
        name = "mine_redefined_test"

    assert provider_registry()["mine_redefined_test"] is Mine is not first


@pytest.mark.parametrize("values, dtype, said", [
    (lambda n: pd.Series([1] + [None] * (n - 1), dtype=object), "int8", "returned None"),
    (lambda n: pd.array([True] + [None] * (n - 1), dtype="boolean"), "int8", "returned <NA>"),
    (lambda n: pd.Series([1000] + [0] * (n - 1), dtype=object), "int8", "from 0 to 1000"),
    (lambda n: pd.Series([2**70] + [0] * (n - 1), dtype=object), "int32", "from 0 to 1180591620717411303424"),
    (lambda n: np.array(["2024-01-01"] * n, dtype="datetime64[ns]"), "int32", "datetime64"),
    (lambda n: np.array(["2024-01-01"] * n, dtype="datetime64[ns]"), "float32", "datetime64"),
    (lambda n: np.array([1] * n, dtype="timedelta64[s]"), "int32", "timedelta64"),
    (lambda n: np.array(["5"] * n), "int32", "<U1 values"),
    (lambda n: pd.Series(["5"] * n, dtype=object), "float32", "returned '5' \\(str\\)"),
    (lambda n: pd.Series([1.5, None] * (n // 2) + [1.5] * (n % 2), dtype=object), "float32", "returned None"),
], ids=["object-none", "boolean-na", "object-overflow", "object-beyond-int64", "datetime-int", "datetime-float",
        "timedelta", "text", "object-text", "object-none-float"])
def test_values_that_are_no_numbers_are_refused_naming_the_provider_and_the_column(values, dtype, said) -> None:
    # Only float and integer arrays were checked: None or NA reached the cast as a TypeError and an integer out of
    # range as an OverflowError, neither naming the provider or the column; datetimes were cast to their
    # nanoseconds, wrapped around.
    mail = validate(pd.DataFrame({"tenant_id": "a", "message_id": ["1", "2"], "sender": "x@v.com",
                                  "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z"], "recipients": "p@a.com"}),
                    tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}])
    snapshots = build_baselines(mail, as_of="2024-05-03")
    provider = _provider("message", dtype, lambda b: {"v": values(b.n_messages)})
    with pytest.raises(ConfigError, match=f"provider 'custom' \\(Custom\\) .*{said}.* column 'v'"):
        SignalSet([provider]).compute(mail, snapshots, level="message")
    # Numbers in an object array, or nullable ones without a missing value, are read as numbers.
    for fine in (pd.Series([3, 4], dtype=object), pd.array([True, False], dtype="boolean"),
                 pd.array([1, 2], dtype="Int64")):
        provider = _provider("message", dtype, lambda b: {"v": fine})
        assert SignalSet([provider]).compute(mail, snapshots, level="message")["v"].tolist() == \
            np.asarray(fine, dtype=float).tolist()
