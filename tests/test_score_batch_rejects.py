"""One message never costs a batch its signals: the scorer's validation, copies, Reply-To lists, Bcc'd mail.

An attacker writes the headers of the mail an engine scores. Before these rules, one crafted message made
``Scorer.score`` raise for its whole batch (no message of it got signals), or was itself kept out of scoring:
a Reply-To holding an address list, two messages with one Message-ID, and "To: the attacker's own address,
Bcc: the victims" (no recipient at an own domain: direction undecidable, for mail the tenant received).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from commgraph.baselines import build_baselines
from commgraph.graph import CommGraphError, InferredOwnDomainsWarning, SchemaError, TenantConfig, validate
from commgraph.signals import Scorer

ACME = [TenantConfig("acme", own_domains=("acme.com",))]
T0 = pd.Timestamp("2024-03-01T09:00Z")
WHEN = "2024-03-25T10:00Z"


@pytest.fixture(scope="module")
def snapshots():
    rows = []
    for d in range(20):
        ts = T0 + pd.Timedelta(days=d)
        rows += [dict(tenant_id="acme", message_id=f"i{d}", timestamp=ts, sender="jane@acme.com",
                      recipients="bob@acme.com"),
                 dict(tenant_id="acme", message_id=f"v{d}", timestamp=ts, sender="billing@vendor.com",
                      recipients="bob@acme.com")]
    return build_baselines(validate(pd.DataFrame(rows), tenants=ACME), as_of="2024-03-25T00:00Z")


@pytest.fixture(params=["configured", "from_snapshot"])
def scorer(request, snapshots) -> Scorer:
    """A scorer told the tenant's own domains, and one that reads them off the snapshot (jane@acme.com sends)."""
    return Scorer(snapshots, tenant_configs=ACME) if request.param == "configured" else Scorer(snapshots)


def _legit(n: int = 50) -> list[dict]:
    return [dict(tenant_id="acme", message_id=f"ok{i}", timestamp=WHEN, sender="billing@vendor.com",
                 recipients="bob@acme.com", reply_to="billing@vendor.com") for i in range(n)]


def _attack(**fields) -> dict:
    return {"tenant_id": "acme", "message_id": "evil", "timestamp": WHEN, "sender": "ceo@evil.com",
            "recipients": "bob@acme.com", "reply_to": None, **fields}


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


# ------------------------------------------------------------------------------------ the reported batch
def test_one_crafted_message_never_costs_the_batch_its_signals(scorer) -> None:
    legit = _legit()
    crafted = [_attack(reply_to="ceo@evil.com, payroll@evil.com"),
               _attack(message_id="<dup@evil.com>"), _attack(message_id="<dup@evil.com>", recipients="jane@acme.com"),
               _attack(message_id="selfaddressed", recipients="ceo@evil.com")]
    for attack in ([crafted[0]], crafted[1:3], [crafted[3]]):
        out = scorer.score(pd.DataFrame(legit + attack), level="message")
        assert set(out["message_id"]) == {m["message_id"] for m in legit + attack}
    # Each crafted message is scored as it is alone.
    for attack in (crafted[0], crafted[3]):
        alone = scorer.score(pd.DataFrame([attack]), level="message").iloc[0]
        one = scorer.score_one(attack)
        assert all(_same(one[n], alone[n]) for n in scorer.signal_set.names)


# ------------------------------------------------------------------------------------ Scorer.validate
def test_validate_names_the_unusable_rows_and_scores_the_rest_as_score_would(scorer) -> None:
    legit = _legit(3)
    bad = _attack(message_id="bad", sender='"no address')  # a quote never closed
    frame = pd.DataFrame(legit[:2] + [bad] + legit[2:])
    with pytest.raises(SchemaError, match="column 'sender'"):
        scorer.score(frame)
    messages = scorer.validate(frame, strict=False)
    assert messages.rejects.index.tolist() == [2]
    assert messages.rejects["reject_reason"].astype(str).tolist() == ["invalid_address"]
    expected = scorer.score(pd.DataFrame(legit))
    pd.testing.assert_frame_equal(scorer.score(messages).reset_index(drop=True), expected)
    # Strict: the error score raises.
    with pytest.raises(SchemaError, match="column 'sender'"):
        scorer.validate(frame)
    # The direction is the scorer's (own domains configured or off its snapshot), not inferred from the batch.
    to_self = pd.DataFrame([_attack(recipients="ceo@evil.com")])
    assert scorer.validate(to_self).frame["direction"].tolist() == ["inbound"]


def test_validate_takes_validations_options_but_the_tenants_are_the_scorers(scorer) -> None:
    frame = pd.DataFrame([{**_legit(1)[0], "timestamp": "2024-03-25 10:00"}]).rename(columns={"sender": "from"})
    m = scorer.validate(frame, columns={"sender": "from"}, timezone="UTC")
    assert m.frame["timestamp"].tolist() == [pd.Timestamp(WHEN)]
    with pytest.raises(CommGraphError, match="tenant_configs"):
        scorer.validate(frame, tenants=ACME)
    with pytest.raises(CommGraphError, match="must be a DataFrame"):
        scorer.validate(frame.to_dict("records"))


# ------------------------------------------------------------------------------------ copies
def test_copies_of_a_message_are_no_error_when_scoring_the_first_is_scored(scorer) -> None:
    legit = _legit(2)
    replay = {**legit[0], "recipients": "jane@acme.com"}  # a second copy of ok0, with another recipient
    frame = pd.DataFrame(legit + [replay])
    out = scorer.score(frame)
    pd.testing.assert_frame_equal(out, scorer.score(pd.DataFrame(legit)))
    # The copy set aside is named as lenient validation names it, in strict mode too.
    for strict in (True, False):
        rejects = scorer.validate(frame, strict=strict).rejects
        assert rejects.index.tolist() == [2]
        assert rejects["reject_reason"].astype(str).tolist() == ["duplicate_message_id"]
    pd.testing.assert_frame_equal(scorer.validate(frame).rejects, validate(frame, strict=False, tenants=ACME).rejects)


def test_a_repeated_row_of_one_row_per_recipient_input_is_no_error_when_scoring(scorer) -> None:
    rows = [dict(tenant_id="acme", message_id="m", timestamp=WHEN, sender="billing@vendor.com", recipient=r)
            for r in ("bob@acme.com", "jane@acme.com", "bob@acme.com")]
    out = scorer.score(pd.DataFrame(rows))
    assert out["recipient"].astype(str).tolist() == ["bob@acme.com", "jane@acme.com"]
    assert scorer.validate(pd.DataFrame(rows)).rejects["reject_reason"].astype(str).tolist() == ["duplicate_edge"]


def test_a_twin_of_one_row_per_recipient_input_is_no_error_and_the_first_message_is_scored(scorer) -> None:
    # A row reusing m1's id with another sender made strict scoring refuse the whole batch, and the lenient route
    # reject the legitimate m1 too (inconsistent_message); one row per message, the twin alone is set aside.
    rows = [dict(tenant_id="acme", message_id=f"m{i}", timestamp=WHEN, sender="billing@vendor.com", recipient=r)
            for i in range(3) for r in ("bob@acme.com", "jane@acme.com")]
    twin = dict(tenant_id="acme", message_id="m1", timestamp=WHEN, sender="ceo@evil.com", recipient="bob@acme.com")
    frame = pd.DataFrame(rows + [twin])
    out = scorer.score(frame)
    pd.testing.assert_frame_equal(out, scorer.score(pd.DataFrame(rows)))
    for strict in (True, False):
        rejects = scorer.validate(frame, strict=strict).rejects
        assert rejects[["reject_row", "reject_reason"]].values.tolist() == [[6, "duplicate_message_id"]]
        assert rejects["reject_message"].iloc[0].startswith("sender 'ceo@evil.com' where the message's row")


def test_a_copy_beside_another_problem_is_left_out_of_the_error(scorer) -> None:
    legit = _legit(2)
    frame = pd.DataFrame(legit + [legit[0], _attack(message_id="late", timestamp="soon")])
    with pytest.raises(SchemaError) as raised:
        scorer.score(frame)
    assert [p.reason.value for p in raised.value.problems] == ["unparseable_timestamp"]


# ------------------------------------------------------------------------------------ reply_to, return_path
@pytest.mark.parametrize("given, kept", [
    ("ceo@evil.com, Payroll <Payroll@Evil.com>", "ceo@evil.com, payroll@evil.com"),  # RFC 5322: an address list
    ("Pay: a@evil.com, b@evil.com;", "a@evil.com, b@evil.com"),  # a group
    ("A <a@evil.com>; a@evil.com", "a@evil.com"),  # each address once
    ('"John Doe"@evil.com', '"John Doe"@evil.com'),  # what holds no address this column reads: as given
    ("a@", "a@"),
])
@pytest.mark.parametrize("column", ["reply_to", "return_path"])
def test_reply_to_and_return_path_never_cost_a_message(scorer, column, given, kept) -> None:
    # No signal reads them: a value there never rejects the message, and none is lost.
    message = _attack(**{column: given})
    m = validate(pd.DataFrame([message]), tenants=ACME)
    assert m.frame[column].tolist() == [kept] and not len(m.rejects)
    scored = scorer.score(pd.DataFrame([message]), level="message")
    assert scored["message_id"].tolist() == ["evil"]
    one = scorer.score_one(message)
    assert all(_same(one[n], scored.iloc[0][n]) for n in scorer.signal_set.names)


def test_a_single_reply_to_is_normalised_as_before() -> None:
    m = validate(pd.DataFrame([_attack(reply_to="Ann <Ann@Vendor.COM>", return_path="<>")]), tenants=ACME)
    assert m.frame["reply_to"].tolist() == ["ann@vendor.com"] and m.frame["return_path"].isna().all()


# ------------------------------------------------------------------------------------ direction
@pytest.mark.parametrize("recipients", ["ceo@evil.com", "list@lists.example.org; x@partner.example"])
def test_mail_from_outside_to_no_own_address_is_inbound_when_own_domains_are_known(scorer, recipients) -> None:
    # "To: the attacker's own address, Bcc: the victims", a mailing list, a forward: the tenant received it.
    message = _attack(message_id="bcc", recipients=recipients)
    assert validate(pd.DataFrame([message]), tenants=ACME).frame["direction"].tolist() == ["inbound"]
    scored = scorer.score(pd.DataFrame([message]), level="message").iloc[0]
    one = scorer.score_one(message)
    assert all(_same(one[n], scored[n]) for n in scorer.signal_set.names)
    # Outbound and internal mail are read as before.
    frame = pd.DataFrame([_attack(message_id="out", sender="jane@acme.com", recipients=recipients),
                          _attack(message_id="int", sender="jane@acme.com", recipients="bob@acme.com")])
    assert scorer.validate(frame).frame["direction"].tolist() == ["outbound", "internal"]


def test_mail_of_a_tenant_whose_own_domains_are_only_inferred_is_still_refused(snapshots) -> None:
    # Inferred from the batch, the own domains may miss the tenant's: nothing is known, so nothing is guessed.
    message = _attack(tenant_id="newco", recipients="victim@gmail.com")  # (a consumer provider: never own)
    frame = pd.DataFrame([message] + [_attack(tenant_id="newco", message_id=f"n{i}", recipients="ann@newco.com")
                                      for i in range(3)])
    with pytest.warns(InferredOwnDomainsWarning, match=r"\['newco.com'\]"):
        m = validate(frame, strict=False)
    assert m.rejects["reject_reason"].astype(str).tolist() == ["direction_undecidable"]
    assert m.frame["direction"].astype(str).tolist() == ["inbound"] * 3
    cold = Scorer(snapshots, cold_start=True)
    with pytest.raises(SchemaError, match="direction_undecidable"), pytest.warns(InferredOwnDomainsWarning):
        cold.score(pd.DataFrame([message]))
    with pytest.raises(CommGraphError, match="cannot derive the direction"):
        cold.score_one(message)


# ------------------------------------------------------------------------------------ rejects given back
def test_rejects_given_back_fixed_are_validated_scored_and_observed_again(scorer) -> None:
    # A previous run's reject columns were carried into the rejects a second time: validation crashed sorting two
    # 'reject_row' columns, and observe's rejects (the rows the overlay sets aside, as given) did too.
    batch = pd.DataFrame([dict(tenant_id="acme", message_id=m, timestamp=t, sender=s, recipients="bob@acme.com")
                          for m, t, s in (("ok", WHEN, "billing@vendor.com"), ("bad", WHEN, "junk"),
                                          ("bad2", WHEN, "junk2"))])
    fixed = scorer.validate(batch, strict=False).rejects
    fixed.loc[fixed["message_id"] == "bad", "sender"] = "billing@vendor.com"
    old = fixed.iloc[:1].assign(message_id="old", timestamp="2024-03-20T10:00Z", sender="billing@vendor.com")
    fixed = pd.concat([fixed, old], ignore_index=True)
    messages = scorer.validate(fixed, strict=False)
    assert messages.frame["message_id"].tolist() == ["bad", "old"]
    assert messages.rejects[["message_id", "reject_reason", "reject_row"]].values.tolist() == [
        ["bad2", "invalid_address", 1]]
    assert scorer.score(messages)["message_id"].tolist() == ["bad", "old"]
    observed = scorer.observe(fixed, as_of="2024-03-26T00:00Z")
    assert not observed.columns.duplicated().any()
    assert observed[["message_id", "reject_reason"]].values.tolist() == [["bad2", "invalid_address"],
                                                                         ["old", "before_snapshot"]]
