"""What the look-alike check compares with and what it never flags, the same on every path.

Two gaps, each checked on the batch path (``SignalSet.compute``, ``Scorer.score``),
the single-message path (``Scorer.score_one``), the backfill and ``explain``:

* the tenant's configured own domains are look-alike targets even when the
  history never shows them sending (an inbound-only feed, a receive-only brand
  domain), and a configured own domain is never close itself (its first
  outbound message included);
* a consumer mail provider's domain (mail.com next to a known gmail.com) is
  never close, while a look-alike *of* a provider (gmaii.com) still is.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig, build_baselines
from commgraph.graph import validate
from commgraph.signals import Scorer, SignalSet, backfill, explain

COLS = ["lookalike_domain_distance", "lookalike_domain_is_close"]
AS_OF = pd.Timestamp("2025-02-01T00:00Z")


def _paths(history: pd.DataFrame, later: pd.DataFrame, tenants: list[dict], *,
           config: BaselineConfig | None = None) -> dict[str, dict[str, tuple[int, int]]]:
    """(distance, is_close) of each message of ``later`` (all sent at AS_OF) on every path, by message id.

    Sent at the snapshot's as_of, each message is backfilled against the whole
    history and none of the others, as the snapshot scores it.
    """
    config = config or BaselineConfig()
    snapshots = build_baselines(validate(history, tenants=tenants), as_of=AS_OF, config=config)
    scorer = Scorer(snapshots, tenant_configs=tenants)
    batch = SignalSet().compute(validate(later, tenants=tenants), snapshots, level="message")
    scored = scorer.score(later, level="message")
    everything = validate(pd.concat([history, later], ignore_index=True), tenants=tenants)
    filled = backfill(everything, config=config, level="message")
    got: dict[str, dict[str, tuple[int, int]]] = {p: {} for p in ("batch", "score", "score_one", "backfill",
                                                                  "explain")}
    for frame, path in ((batch, "batch"), (scored, "score"), (filled, "backfill")):
        for message_id, d, c in zip(frame["message_id"].astype(str), frame[COLS[0]], frame[COLS[1]]):
            if message_id in set(later["message_id"]):
                got[path][message_id] = (int(d), int(c))
    for one in later.to_dict("records"):
        values = scorer.score_one(one)
        got["score_one"][one["message_id"]] = (int(values[COLS[0]]), int(values[COLS[1]]))
        e = explain(one, scorer).frame.set_index("signal")
        got["explain"][one["message_id"]] = (int(e.loc[COLS[0], "value"]), int(e.loc[COLS[1], "value"]))
    return got


def _inbound(senders: list[str], tenant: str = "t", to: str = "ann@acme.com") -> pd.DataFrame:
    return pd.DataFrame({"tenant_id": tenant, "message_id": [f"h{i}" for i in range(len(senders))],
                         "timestamp": [AS_OF - pd.Timedelta(days=20 - i % 15, hours=i) for i in range(len(senders))],
                         "sender": senders, "recipients": to})


def test_a_lookalike_of_an_own_domain_that_never_sent_is_close_on_every_path() -> None:
    """An inbound-only feed: acme.com (configured) never sends, yet acrne.com is 0 edits from it."""
    tenants = [{"tenant_id": "t", "own_domains": ["acme.com"]}]
    history = _inbound([f"s{i}@vendor{i}.com" for i in range(5)])
    later = pd.DataFrame({"tenant_id": "t", "message_id": ["look", "far"], "timestamp": AS_OF,
                          "sender": ["CEO <ceo@acrne.com>", "x@unrelated.org"], "recipients": "ann@acme.com"})
    want = {"look": (0, 1), "far": (8, 0)}
    assert _paths(history, later, tenants) == {p: want for p in ("batch", "score", "score_one", "backfill",
                                                                 "explain")}


def test_a_second_own_domain_sending_its_first_outbound_message_is_not_a_lookalike() -> None:
    """acme.co (configured) is 1 edit from acme.com, which sends internal mail; its first message out (and the
    first message from acme-brand.com, a receive-only brand domain) is the tenant's own, not a look-alike."""
    tenants = [{"tenant_id": "t", "own_domains": ["acme.com", "acme.co", "acme-brand.com"]}]
    history = pd.concat([_inbound([f"s{i}@vendor{i}.com" for i in range(4)]),
                         _inbound(["bob@acme.com"] * 3).assign(message_id=lambda f: "i" + f["message_id"])])
    later = pd.DataFrame({"tenant_id": "t", "message_id": ["co", "brand", "fake"], "timestamp": AS_OF,
                          "sender": ["sales@acme.co", "news@acme-brand.com", "x@acme-brand.co"],
                          "recipients": ["client@customer.com", "client@customer.com", "ann@acme.com"]})
    want = {"co": (1, 0), "brand": (6, 0), "fake": (1, 1)}
    got = _paths(history, later, tenants)
    assert got == {p: want for p in got}
    e = explain(later.iloc[0].to_dict(), Scorer(build_baselines(validate(history, tenants=tenants), as_of=AS_OF),
                                                tenant_configs=tenants)).frame.set_index("signal")
    evidence = e.loc[COLS[1], "evidence"]
    assert evidence["own"] and evidence["established"] and evidence["resembles"] == "acme.com"


def test_consumer_providers_are_never_lookalikes_of_each_other_on_every_path() -> None:
    """gmail.com and me.com are known: mail.com, email.com (1 edit), mac.com, gmx.com (2) are providers, not
    look-alikes; gmaii.com, a look-alike of one, is."""
    tenants = [{"tenant_id": "t", "own_domains": ["acme.com"]}]
    history = _inbound([f"u{d}@{dom}" for d in range(3) for dom in ("gmail.com", "me.com")])
    domains = {"mail.com": 1, "email.com": 1, "mac.com": 2, "gmx.com": 2, "gmaii.com": 1}
    later = pd.DataFrame({"tenant_id": "t", "message_id": list(domains), "timestamp": AS_OF,
                          "sender": [f"someone@{d}" for d in domains], "recipients": "ann@acme.com"})
    want = {d: (n, int(d == "gmaii.com")) for d, n in domains.items()}
    got = _paths(history, later, tenants)
    assert got == {p: want for p in got}
    scorer = Scorer(build_baselines(validate(history, tenants=tenants), as_of=AS_OF), tenant_configs=tenants)
    sentence = explain(later.iloc[0].to_dict(), scorer).frame.set_index("signal").loc[COLS[1], "sentence"]
    assert sentence.startswith("mail.com is a consumer mail provider's domain") and "'gmail.com'" in sentence


def test_the_same_name_under_another_suffix_is_one_edit_away_on_every_path() -> None:
    """acme.net, acme.co.uk and a homoglyph's acme.org next to the own acme.com, globex.de next to the known
    globex.com: the suffix swap look-alikes are registered with were 3 to 8 edits away, never close."""
    tenants = [{"tenant_id": "t", "own_domains": ["acme.com"]}]
    history = pd.concat([_inbound([f"sales{i}@globex.com" for i in range(4)]),
                         _inbound(["bob@acme.com"] * 3).assign(message_id=lambda f: "i" + f["message_id"])])
    domains = {"acme.net": (1, 1), "acme.co.uk": (1, 1), "xn--cme-5cd.org": (1, 1), "globex.de": (1, 1),
               "acme-group.net": (8, 0), "globex.com": (5, 0)}
    later = pd.DataFrame({"tenant_id": "t", "message_id": list(domains), "timestamp": AS_OF,
                          "sender": [f"ceo@{d}" for d in domains], "recipients": "ann@acme.com"})
    got = _paths(history, later, tenants)
    assert got == {p: domains for p in got}


def test_the_description_names_both_rules() -> None:
    text = SignalSet(["lookalike"]).describe().set_index("signal").loc[COLS[1], "description"]
    assert "own domains" in text and "consumer mail provider" in text


DOMAINS = ("acme.com", "acme.co", "acrne.com", "globex.com", "g1obex.com", "gmail.com", "mail.com", "gmaii.com",
           "vendor.org", "vend0r.org", "acme.net", "globex.co.uk", "vendor.de")
OWN = ("acme.com", "acme.co", "globex.com")


@st.composite
def histories(draw):
    own = draw(st.lists(st.sampled_from(OWN), min_size=1, max_size=3, unique=True))
    rows = []
    for i, (dom, day) in enumerate(draw(st.lists(st.tuples(st.sampled_from(DOMAINS), st.integers(1, 20)),
                                                 min_size=1, max_size=12))):
        # Mail from an own domain goes out (or stays in), other mail comes in to the first own domain.
        to = draw(st.sampled_from([f"x@{own[0]}", "client@customer.com"])) if dom in own else f"ann@{own[0]}"
        rows.append({"message_id": f"h{i}", "timestamp": AS_OF - pd.Timedelta(days=day), "sender": f"u@{dom}",
                     "recipients": to})
    later = [{"message_id": f"n{i}", "timestamp": AS_OF, "sender": f"v@{dom}",
              "recipients": "client@customer.com" if dom in own else f"ann@{own[0]}"}
             for i, dom in enumerate(draw(st.lists(st.sampled_from(DOMAINS), min_size=1, max_size=4)))]
    return ([{"tenant_id": "t", "own_domains": own}], pd.DataFrame(rows).assign(tenant_id="t"),
            pd.DataFrame(later).assign(tenant_id="t"))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_every_path_agrees_and_never_flags_an_own_or_provider_domain(case) -> None:
    tenants, history, later = case
    got = _paths(history, later, tenants, config=BaselineConfig(known_contact_domains=2))
    assert all(got[p] == got["batch"] for p in got), got
    own = set(tenants[0]["own_domains"])
    for one in later.to_dict("records"):
        domain = one["sender"].rpartition("@")[2]
        if domain in own or domain in ("gmail.com", "mail.com"):
            assert got["batch"][one["message_id"]][1] == 0
        if domain == "acrne.com" and "acme.com" in own:  # 0 edits from an own domain, whatever the history
            assert got["batch"][one["message_id"]] == (0, 1)


@pytest.mark.parametrize("own", [("acme.com",), ("acme.com", "acme-brand.com")])
def test_the_comparison_list_appends_only_own_domains_it_lacks(own) -> None:
    from commgraph.baselines._snapshot import _example
    from commgraph.signals._view import SnapshotView

    view = SnapshotView(_example())
    known, cache = view.comparison(own)
    base = view.known_domains()
    assert known[0][:len(base[0])] == base[0]
    assert (cache is view.lookalike_cache()) is all(d in base[2] for d in own)
    assert view.comparison(own)[1] is cache  # made once per own domains


def test_own_domains_validation_inferred_are_no_targets_on_any_path() -> None:
    # A tenant without a configuration: validation infers acme.com (its recipients' domain). The batch path and the
    # backfill compared with the inferred domain (0, 1) while the scorer, which knows only configured ones, did not
    # (7, 0): consistency_report would call the engine inconsistent. Every path now compares with configured ones.
    import warnings

    history = _inbound([f"s{i}@vendor{i}.com" for i in range(5)])
    later = pd.DataFrame({"tenant_id": "t", "message_id": ["look"], "timestamp": AS_OF,
                          "sender": ["CEO <ceo@acrne.com>"], "recipients": "ann@acme.com"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (own domains inferred, said)
        got = _paths(history, later, [])
        assert validate(history).own_domains == {"t": ("acme.com",)}
        assert validate(history).configured_own_domains == {}
    assert {path: found["look"] for path, found in got.items()} == {p: (7, 0) for p in got}
    configured = _paths(history, later, [{"tenant_id": "t", "own_domains": ["acme.com"]}])
    assert {path: found["look"] for path, found in configured.items()} == {p: (0, 1) for p in configured}


def test_explain_names_the_look_alike_of_a_cold_tenant() -> None:
    # explain of a tenant without a snapshot read the target off a view made afresh (nothing checked on it): it said
    # 'betta.com resembles no own or known-contact domain' and 'looks like None' while is_close was 1.
    from commgraph.baselines._snapshot import _example

    scorer = Scorer({"acme": _example()}, cold_start=True,
                    tenant_configs=[{"tenant_id": "beta", "own_domains": ["beta.com"]}])
    message = {"tenant_id": "beta", "message_id": "9", "timestamp": "2024-05-04T10:00:00+00:00",
               "sender": "x@betta.com", "recipients": "cy@beta.com"}
    assert scorer.score_one(message)["lookalike_domain_is_close"] == 1
    frame = explain(message, scorer).frame.set_index("signal")
    assert frame.loc["lookalike_domain_is_close", "evidence"]["resembles"] == "beta.com"
    assert frame.loc["lookalike_domain_is_close", "sentence"] == ("betta.com looks like 'beta.com' and is not an "
                                                                 "established contact.")


def test_inferred_own_domains_stay_inferred_in_later_chunks_and_in_the_transformer(tmp_path) -> None:
    # A chunked read hands the first chunk's inferred own domains to later chunks as a configuration: they reported
    # them configured, and a chunk scored alone compared with them. The transformer did the same with fit's.
    import warnings

    from commgraph.graph import read_messages
    from commgraph.signals._batch import SignalBatch
    from commgraph.signals._transformer import BaselineSignals

    history = _inbound([f"s{i}@vendor{i}.com" for i in range(6)])
    history.to_csv(tmp_path / "mail.csv", index=False)
    later = pd.DataFrame({"tenant_id": "t", "message_id": ["look"], "timestamp": AS_OF,
                          "sender": ["CEO <ceo@acrne.com>"], "recipients": "ann@acme.com"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (own domains inferred, said)
        chunks = list(read_messages(tmp_path / "mail.csv", chunksize=3))
        assert len(chunks) == 2 and all(c.inferred_own == {"t"} and c.configured_own_domains == {} for c in chunks)
        assert all(SignalBatch.from_messages(c).own_domains == {} for c in chunks)
        fitted = BaselineSignals(as_of=AS_OF).fit(history)
        row = fitted.transform(later)[0]
    names = list(fitted.get_feature_names_out())
    assert (int(row[names.index(COLS[0])]), int(row[names.index(COLS[1])])) == (7, 0)  # as score and score_one
