"""explain(): every signal with its value, the baseline evidence and a plain sentence."""

from __future__ import annotations

import pandas as pd
import pytest

from commgraph.baselines import build_baselines
from commgraph.graph import CommGraphError, ConfigError, validate
from commgraph.signals import Scorer, SignalSet, explain

TENANTS = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]


@pytest.fixture(scope="module")
def scorer():
    rows = []
    for day in range(1, 9):
        rows += [("ann@acme.com", "cy@acme.com", "Ann Lee"), ("bob@vendor.com", "cy@acme.com", "Bob"),
                 ("cy@acme.com", "ceo@microsoft.com", "Cy")]
    frame = pd.DataFrame(rows, columns=["sender", "recipients", "sender_display_name"]).assign(
        tenant_id="acme", message_id=[f"h{i}" for i in range(len(rows))],
        timestamp=[f"2024-05-{1 + i // 3:02d}T09:00Z" for i in range(len(rows))])
    return Scorer(build_baselines(validate(frame, tenants=TENANTS), as_of="2024-05-10"), tenant_configs=TENANTS)


def _message(**extra):
    m = {"tenant_id": "acme", "message_id": "x1", "timestamp": "2024-05-10T09:00:00+00:00",
         "sender": '"Ann Lee" <ann.lee@rnicrosoft.com>', "recipients": "cy@acme.com"}
    m.update(extra)
    return m


def test_every_signal_has_value_evidence_and_sentence(scorer) -> None:
    e = explain(_message(), scorer)
    assert list(e.frame.columns) == ["signal", "value", "evidence", "sentence"]
    assert list(e.frame["signal"]) == SignalSet().names
    one = scorer.score_one(_message())
    assert all(e.frame["value"].iloc[i] == one[n] or one[n] != one[n] for i, n in enumerate(e.frame["signal"]))
    assert e.frame["sentence"].map(lambda s: isinstance(s, str) and s.endswith(".")).all()
    assert e.frame["evidence"].map(lambda v: isinstance(v, dict)).all()


def test_the_evidence_names_what_a_lookalike_resembles_and_who_is_impersonated(scorer) -> None:
    e = explain(_message(), scorer)
    look = e.frame.set_index("signal").loc["lookalike_domain_is_close"]
    assert look["value"] == 1 and look["evidence"]["resembles"] == "microsoft.com"
    assert "microsoft.com" in look["sentence"]
    name = e.frame.set_index("signal").loc["display_name_matches_internal"]
    assert name["value"] == 1 and "ann@acme.com" in name["evidence"]["internal_addresses"]
    assert "ann@acme.com" in name["sentence"]


@pytest.mark.parametrize("sender, direction, said", [
    ('"Ann Lee" <ann.lee@rnicrosoft.com>', None, "this message came from outside the organisation."),
    ('"Ann Lee" <ann@acme.com>', "inbound", "this message came from outside the organisation under that mailbox's "
                                              "own address."),
    ('"Ann Lee" <cy@acme.com>', None, "this address never used it before.")])
def test_the_impersonation_sentence_says_why_the_signal_fired(scorer, sender, direction, said) -> None:
    # The sentence said "this sender is not it" also for inbound mail under the mailbox's own address (spoofed),
    # which the signal flags as the mail from outside it is.
    message = _message(sender=sender, recipients="bo@acme.com") if direction is None else _message(
        sender=sender, recipients="bo@acme.com", direction=direction)
    name = explain(message, scorer).frame.set_index("signal").loc["display_name_matches_internal"]
    assert name["value"] == 1 == scorer.score_one(message)["display_name_matches_internal"]
    assert name["sentence"] == f"The display name 'ann lee' belongs to an internal mailbox (ann@acme.com) and {said}"


def test_known_sender_evidence_has_counts_and_first_seen(scorer) -> None:
    e = explain(_message(sender="bob@vendor.com"), scorer)
    row = e.frame.set_index("signal").loc["sender_days_known"]
    assert row["evidence"]["n_messages"] == 8 and str(row["evidence"]["first_seen"]).startswith("2024-05-01")
    assert e.sentence("sender_is_new") == "The tenant knows this sender."
    pair = e.frame.set_index("signal").loc["pair_messages"]["evidence"]
    assert pair["cy@acme.com"]["n_messages"] == 8


def test_readable_in_a_notebook(scorer) -> None:
    e = explain(_message(), scorer)
    html = e._repr_html_()
    assert html.startswith("<div>") and "<table>" in html and "lookalike_domain_is_close" in html
    assert repr(e).splitlines()[0].startswith("Explanation of 'x1' from ann.lee@rnicrosoft.com")


def test_explain_from_a_snapshot_and_errors(scorer) -> None:
    e = explain(_message(), scorer.snapshot("acme"))
    assert e.message["snapshot_as_of"].startswith("2024-05-10")
    with pytest.raises(ConfigError, match="'scorer' parameter"):
        explain(_message(), "nope")
    cold = explain(_message(tenant_id="newco", recipients="a@newco.com"), scorer, cold_start=True)
    assert cold.frame.set_index("signal").loc["sender_is_new", "value"] == 1


def test_lookalike_evidence_agrees_with_the_signal_on_a_domain_established_by_active_days() -> None:
    """contoso.co resembles contoso.com (the tenant writes to it) but has sent mail on 14 distinct days: an
    established correspondent by the 14-day rule alone (never written to, no internal mail), so the signal does
    not flag it, and explain's evidence must say so too; with one day fewer it is flagged, and explain agrees."""
    from commgraph.signals._lookalike import ESTABLISHED_DAYS

    for days, close in ((ESTABLISHED_DAYS, 0), (ESTABLISHED_DAYS - 1, 1)):
        rows = [("cy@acme.com", "ceo@contoso.com", f"2024-04-{1 + d:02d}T09:00Z") for d in range(3)]
        rows += [("sue@contoso.co", "cy@acme.com", f"2024-04-{1 + d:02d}T10:00Z") for d in range(days)]
        frame = pd.DataFrame(rows, columns=["sender", "recipients", "timestamp"]).assign(
            tenant_id="acme", message_id=[f"h{i}" for i in range(len(rows))])
        scorer = Scorer(build_baselines(validate(frame, tenants=TENANTS), as_of="2024-05-01"), tenant_configs=TENANTS)
        message = _message(sender="sue@contoso.co", timestamp="2024-05-01T09:00:00+00:00")
        values = scorer.score_one(message)
        assert (values["lookalike_domain_distance"], values["lookalike_domain_is_close"]) == (1, close)
        e = explain(message, scorer).frame.set_index("signal")
        evidence = e.loc["lookalike_domain_is_close", "evidence"]
        domain = e.loc["domain_solicited_messages", "evidence"]
        assert (domain["n_outbound_to"], domain["active_days"]) == (0, days)
        assert evidence["resembles"] == "contoso.com"
        assert evidence["established"] is (not close)
        assert e.loc["lookalike_domain_is_close", "value"] == close


@pytest.mark.parametrize("policy", ["presume_safe", "ignore"])
def test_the_likelihood_sentence_names_the_presumed_safe_mail_it_counts(policy) -> None:
    # Under the default policy the value counts unreported mail past the settle delay as safe; the sentence
    # named only the labels ("0 safe, 0 attack, 0 spam labels; prior mean 0.500" beside a value of 0.875).
    hist = pd.DataFrame({"tenant_id": "acme", "message_id": [f"m{i}" for i in range(12)],
                         "timestamp": [f"2025-01-{i + 1:02d}T09:00Z" for i in range(12)],
                         "sender": ["bob@vendor.com"] * 6 + [f"x{i}@other{i}.com" for i in range(6)],
                         "recipients": "ann@acme.com", "direction": "inbound",
                         "label": [None] * 6 + ["attack", "safe", "spam", "attack", "safe", None],
                         "labeled_at": [None] * 6 + ["2025-01-20T00:00Z"] * 5 + [None]})
    snap = build_baselines(validate(hist, tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}]),
                           as_of="2025-01-25T00:00Z", config={"label_policy": policy})["acme"]
    row = explain({"tenant_id": "acme", "message_id": "new", "timestamp": "2025-01-25T10:00Z",
                   "sender": "bob@vendor.com", "recipients": "ann@acme.com"}, snap).frame.set_index(
        "signal").loc["sender_safe_likelihood"]
    presumed = "6 unreported messages past the settle delay presumed safe"
    assert (presumed in row.sentence) == (policy == "presume_safe"), row.sentence


def test_a_privacy_snapshot_is_explained_with_the_message_s_own_strings() -> None:
    # A privacy-mode snapshot stores no names, addresses or domains: the impersonation sentence read "The display
    # name None belongs to an internal mailbox ()", and the look-alike one claimed the domain "resembles no own or
    # known-contact domain", where privacy mode compares with none (its distance is always the cap).
    history = pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2"],
                            "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z"],
                            "sender": "Jane Boss <jane.boss@acme.com>", "recipients": ["cy@acme.com", "di@acme.com"]})
    secret = bytes(range(32))
    scorers = {privacy: Scorer(build_baselines(validate(history, tenants=TENANTS), as_of="2024-05-03",
                                               config={"privacy": privacy}, secrets={"acme": secret} if privacy
                                               else None), tenant_configs=TENANTS,
                               secrets={"acme": secret} if privacy else None) for privacy in (False, True)}
    outside = _message(sender="Jane BOSS <jane.boss.ceo@gmail.com>", timestamp="2024-05-03T10:00Z")
    spoofed = _message(sender="Jane Boss <jane.boss@acme.com>", timestamp="2024-05-03T10:00Z", direction="inbound")
    lookalike = _message(sender="Jane Boss <jane.boss@acrne.com>", timestamp="2024-05-03T10:00Z")
    for message, why in ((outside, "this message came from outside the organisation."),
                         (spoofed, "this message came from outside the organisation under that mailbox's own "
                                   "address.")):
        rows = {privacy: explain(message, scorer).frame.set_index("signal").loc["display_name_matches_internal"]
                for privacy, scorer in scorers.items()}
        assert rows[False]["sentence"] == (f"The display name 'jane boss' belongs to an internal mailbox "
                                           f"(jane.boss@acme.com) and {why}")
        assert rows[True]["sentence"] == (f"The display name 'jane boss' belongs to an internal mailbox (privacy mode "
                                          f"keeps no addresses for that name) and {why}")
        for row in rows.values():
            assert row["value"] == 1 and row["evidence"]["display_name"] == "jane boss"
            assert row["evidence"]["message_display_name"] == message["sender"].partition(" <")[0]
    private = explain(lookalike, scorers[True]).frame.set_index("signal")
    assert private.loc["lookalike_domain_distance", "value"] == 8  # the cap: no domain names to compare with
    assert private.loc["lookalike_domain_distance", "sentence"] == (
        "acrne.com was not compared with any domain: a privacy-mode snapshot keeps no domain names to compare with, "
        "so the distance is always the cap (8).")
    assert private.loc["lookalike_domain_is_close", "sentence"].startswith("Not checked: a privacy-mode snapshot")
    plain = explain(lookalike, scorers[False]).frame.set_index("signal")
    assert "'acme.com'" in plain.loc["lookalike_domain_distance", "sentence"]
    assert plain.loc["lookalike_domain_is_close", "sentence"] == "acrne.com looks like 'acme.com' and is not an " \
                                                                  "established contact."


def test_explain_says_which_snapshot_and_warns_of_a_message_it_already_counts() -> None:
    # The false-positive hunt: a message flagged yesterday, explained after the nightly refresh, read baselines
    # that count it (pair_is_first_contact 1 when scored, 0 explained) without a word, the snapshot's as_of unnamed.
    import warnings

    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    mail = pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2"],
                         "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z"],
                         "sender": ["ann@vendor.com", "eve@new.com"], "recipients": "cy@acme.com"})
    messages = validate(mail, tenants=tenants)
    flagged = mail.iloc[1].to_dict()
    then = Scorer(build_baselines(messages, as_of="2024-05-02T00:00Z"), tenant_configs=tenants)
    now = Scorer(build_baselines(messages, as_of="2024-05-03T00:00Z"), tenant_configs=tenants)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = explain(flagged, then)  # sent after that snapshot: no warning
    assert "against the snapshot as of 2024-05-02 00:00 UTC" in repr(e).splitlines()[0]
    assert "against the snapshot as of 2024-05-02 00:00 UTC" in e._repr_html_()
    assert e.frame.set_index("signal").loc["pair_is_first_contact", "value"] == 1
    with pytest.warns(UserWarning, match=r"message '2' was sent at 2024-05-02T09:00:00\+00:00, before the "
                                         r"snapshot's as_of \(2024-05-03T00:00:00\+00:00\)"):
        later = explain(flagged, now)
    assert "against the snapshot as of 2024-05-03 00:00 UTC" in repr(later).splitlines()[0]


def test_explain_follows_the_scorers_cold_start() -> None:
    # explain(message, scorer) passed its own cold_start=False: it refused a tenant the same scorer scores cold.
    tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}, {"tenant_id": "new", "own_domains": ["new.com"]}]
    history = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["1"], "timestamp": ["2024-05-01T09:00Z"],
                                     "sender": "ann@vendor.com", "recipients": "cy@acme.com"}), tenants=tenants)
    scorer = Scorer(build_baselines(history, as_of="2024-05-02"), tenant_configs=tenants, cold_start=True)
    message = {"tenant_id": "new", "message_id": "1", "timestamp": "2024-05-03T10:00Z", "sender": "boss@gmail.com",
               "recipients": "a@new.com"}
    e = explain(message, scorer)
    assert e.frame.set_index("signal").loc["sender_is_new", "value"] == scorer.score_one(message)["sender_is_new"] == 1
    assert "against no snapshot: cold start" in repr(e).splitlines()[0]
    with pytest.raises(CommGraphError, match="no snapshot for tenant 'new'"):
        explain(message, scorer, cold_start=False)
