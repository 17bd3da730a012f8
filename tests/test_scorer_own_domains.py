"""Where a scorer's own domains come from, and why no message being scored can change them.

A scorer without tenant configurations reads a tenant's own domains off its
snapshot. An attacker controls the addresses of the mail scored: a Cc to a
mailbox at their own domain, a redirect that logs their message outbound. None
of it may make their domain the tenant's, and their mail internal.
"""

from __future__ import annotations

import threading
import warnings

import pandas as pd
import pytest

import commgraph.signals._scorer as scorer_module
from commgraph.baselines import BaselineConfig, SnapshotStore, build_baselines
from commgraph.graph import TenantConfig, infer_own_domains, validate
from commgraph.signals import Scorer
from commgraph.signals._view import SnapshotView

T0 = pd.Timestamp("2024-03-01T09:00Z")
AS_OF = "2024-04-01T00:00Z"
SECRETS = {"acme": bytes(range(32))}
CONFIG = [TenantConfig("acme", own_domains=("acme.com",))]


def _history(days: int = 30) -> pd.DataFrame:
    rows = []
    for d in range(days):
        ts = T0 + pd.Timedelta(days=d)
        rows += [dict(tenant_id="acme", message_id=f"i{d}", timestamp=ts, sender="Jane Doe <jane.doe@acme.com>",
                      recipients="bob@acme.com"),
                 dict(tenant_id="acme", message_id=f"v{d}", timestamp=ts + pd.Timedelta(hours=1),
                      sender="billing@vendor.com", recipients="bob@acme.com")]
    return pd.DataFrame(rows)


def _directions(scorer: Scorer, messages: list[dict]) -> list[str]:
    return scorer._messages(pd.DataFrame(messages)).frame["direction"].tolist()


CRAFTED = dict(tenant_id="acme", message_id="a1", timestamp="2024-04-01T10:00Z",
               sender="Jane Doe <jane@evil.com>", recipients="bob@acme.com; friend@evil.com")
SHAPES = [CRAFTED,
          dict(CRAFTED, message_id="a2", recipients="bob@acme.com"),
          dict(CRAFTED, message_id="a3", sender="jane.doe@acme.com", recipients="bob@acme.com"),
          dict(CRAFTED, message_id="a4", sender="jane.doe@acme.com", recipients="bob@acme.com; x@vendor.com"),
          dict(CRAFTED, message_id="a5", sender="x@Mail.ACME.com.", recipients="partner@vendor.com")]
WANT = ["inbound", "inbound", "internal", "outbound", "outbound"]


def test_a_cc_to_the_attackers_domain_does_not_make_it_own_in_privacy_mode() -> None:
    # Served as documented (its secret, no configuration), a privacy-mode tenant inferred own domains from each
    # batch: a Cc to friend@evil.com made evil.com the tenant's and the attacker's first message internal.
    messages = validate(_history(), tenants=CONFIG)
    snapshots = build_baselines(messages, as_of=AS_OF, config=BaselineConfig(privacy=True), secrets=SECRETS)
    scorer = Scorer(snapshots, secrets=SECRETS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing inferred: the snapshot's keyed own domains name them
        assert _directions(scorer, SHAPES) == WANT
    plain = Scorer(build_baselines(messages, as_of=AS_OF))
    # Both paths read one rule: the batch's and the single message's directions, and every signal, agree.
    batch = scorer.score(pd.DataFrame(SHAPES), level="message")
    for i, message in enumerate(SHAPES):
        one = scorer.score_one(message)
        assert one["recipient_safe_likelihood"] == pytest.approx(batch["recipient_safe_likelihood"][i])
        assert one["pair_messages"] == batch["pair_messages"][i]
    assert _directions(plain, SHAPES) == WANT
    # "To: the attacker's own address, Bcc: victims", alone in its batch: no own domain in the batch to name, yet
    # the tenant's are known (by key), so the mail it received is inbound, in both paths.
    to_self = dict(CRAFTED, message_id="a6", recipients="jane@evil.com")
    assert _directions(scorer, [to_self]) == _directions(plain, [to_self]) == ["inbound"]
    assert scorer.score_one(to_self)["pair_messages"] == 0


def test_an_inbound_only_snapshot_names_the_domains_its_mail_is_delivered_to() -> None:
    # A feed of inbound mail only: no domain ever sent as the tenant, so every batch inferred own domains, and
    # one observed message with a Cc to the attacker's domain made evil.com the tenant's only own domain until
    # the next reload: every ordinary message failed validation, the attacker's mail was outbound.
    history = _history().query("sender == 'billing@vendor.com'").assign(direction="inbound")
    snapshot = build_baselines(validate(history), as_of=AS_OF)["acme"]
    scorer = Scorer({"acme": snapshot})
    legit = [dict(tenant_id="acme", message_id=f"l{i}", timestamp="2024-04-01T12:00Z", sender="billing@vendor.com",
                  recipients="bob@acme.com") for i in range(3)]
    assert _directions(scorer, [CRAFTED]) == ["inbound"]
    assert scorer.observe(pd.DataFrame([CRAFTED]), as_of="2024-04-01T11:00Z").empty
    assert len(scorer.score(pd.DataFrame(legit))) == 3
    assert scorer.score_one(legit[0])["sender_is_new"] == 0
    later = dict(CRAFTED, message_id="a9", timestamp="2024-04-01T12:00Z", recipients="bob@acme.com")
    assert _directions(scorer, [later]) == ["inbound"]
    assert SnapshotView(snapshot).own_domains() == ("acme.com",)


@pytest.mark.parametrize("provider", ["gmail.com", "partner.org"])
def test_a_domain_logged_outbound_now_and_then_is_not_the_tenants(provider) -> None:
    # A mailbox's redirect rule sends a friend's message on to a home address: the gateway logs it outbound with
    # the friend's From. Any such message made the friend's domain own, and every later sender there internal.
    history = _history().assign(direction=lambda f: f["sender"].map(
        lambda s: "internal" if "acme.com" in s else "inbound"))
    history.loc[history["sender"] == "billing@vendor.com", "sender"] = f"friend@{provider}"
    redirect = dict(tenant_id="acme", message_id="redirect", timestamp=T0 + pd.Timedelta(days=9, minutes=5),
                    sender=f"friend@{provider}", recipients="bob.home@yahoo.com", direction="outbound")
    scorer = Scorer(build_baselines(validate(pd.concat([history, pd.DataFrame([redirect])])), as_of=AS_OF))
    assert scorer._configs()[0].own_domains == ("acme.com",)
    attack = dict(CRAFTED, sender=f"Jane Doe <jane.doe.acme@{provider}>", recipients="bob@acme.com")
    assert _directions(scorer, [attack]) == ["inbound"]
    assert scorer.score_one(attack)["display_name_matches_internal"] == 1  # read as an outsider's mail


def test_a_majority_of_mail_sent_as_the_tenant_makes_a_domain_own() -> None:
    # The rule itself, on counts: sent as the tenant (internal or outbound) more often than written to it.
    rows = [dict(message_id=f"o{i}", sender="a@newco.com", recipients="x@vendor.com", direction="outbound")
            for i in range(3)] + [dict(message_id=f"n{i}", sender="b@newco.com", recipients="a@acme.com",
                                       direction="inbound") for i in range(2)] + [
        dict(message_id=f"p{i}", sender="c@partner.org", recipients="a@acme.com", direction="inbound")
        for i in range(2)] + [dict(message_id="p9", sender="c@partner.org", recipients="x@vendor.com",
                                   direction="outbound")]
    frame = pd.DataFrame(rows).assign(tenant_id="acme", timestamp=T0)
    view = SnapshotView(build_baselines(validate(frame), as_of=AS_OF)["acme"])
    assert view.own_domains() == ("newco.com",)


def test_infer_own_domains_counts_weights_as_messages() -> None:
    tenants = pd.Series(["t"] * 3)
    domains = pd.Series(["acme.com", "partner.org", "gmail.com"])
    assert infer_own_domains(tenants, domains, weights=[10, 6, 50]) == {"t": ("acme.com", "partner.org")}
    assert infer_own_domains(tenants, domains, weights=[10, 4, 50]) == {"t": ("acme.com",)}
    with pytest.raises(Exception, match="not both"):
        infer_own_domains(tenants, domains, weights=[1, 1, 1], messages=[0, 1, 2])


def test_a_reload_during_a_call_never_mixes_two_snapshots(tmp_path, monkeypatch) -> None:
    # score() validated with the snapshot served when it began (its own domains decide the direction) and then
    # looked up in the one a reload had brought meanwhile; score_one's own-domain callbacks read the new one.
    history = _history(10)
    v1 = build_baselines(validate(history, tenants=CONFIG), as_of="2024-03-11T00:00Z")["acme"]
    newco = pd.DataFrame([dict(tenant_id="acme", message_id=f"n{i}", timestamp=T0 + pd.Timedelta(days=10, hours=i),
                               sender="ann@newco.com", recipients="bob@acme.com", direction="internal")
                          for i in range(5)])
    v2 = build_baselines(validate(pd.concat([history, newco]), tenants=CONFIG), as_of="2024-03-12T00:00Z")["acme"]
    store = SnapshotStore(tmp_path)
    store.publish(v1)
    message = dict(tenant_id="acme", message_id="q", timestamp="2024-03-12T10:00Z", sender="dan@newco.com",
                   recipients="bob@acme.com")
    want_v1 = Scorer({"acme": v1}).score(pd.DataFrame([message]))
    want_v2 = Scorer({"acme": v2}).score(pd.DataFrame([message]))
    assert not want_v1.equals(want_v2)  # (the two snapshots answer differently)
    scorer = Scorer.from_store(store)
    store.publish(v2)
    validate_then = scorer_module.Scorer._messages

    def reload_between(self, batch, call=None):
        messages = validate_then(self, batch, *([call] if call is not None else []))
        reloading = threading.Thread(target=self.reload)  # another thread's reload lands here
        reloading.start()
        reloading.join()
        return messages

    monkeypatch.setattr(scorer_module.Scorer, "_messages", reload_between)
    pd.testing.assert_frame_equal(scorer.score(pd.DataFrame([message])), want_v1)
    monkeypatch.undo()
    assert scorer.versions == {"acme": 2}
    pd.testing.assert_frame_equal(scorer.score(pd.DataFrame([message])), want_v2)


@pytest.mark.parametrize("domain", ["github.io", "gmail.com"])
def test_privacy_and_plain_mode_agree_on_a_public_suffix_or_provider_sending_as_the_tenant(domain) -> None:
    # A privacy-mode snapshot keeps its own domains as keys, which cannot tell a public suffix or a consumer
    # provider: the names asked about can, so github.io sending outbound made it own in privacy mode only.
    rows = []
    for d in range(20):
        ts = T0 + pd.Timedelta(days=d)
        rows += [dict(message_id=f"i{d}", timestamp=ts, sender="jane@acme.com", recipients="bob@acme.com",
                      direction="internal"),
                 dict(message_id=f"g{d}", timestamp=ts, sender=f"pages@{domain}", recipients="x@vendor.com",
                      direction="outbound")]
    messages = validate(pd.DataFrame(rows).assign(tenant_id="acme"), tenants=CONFIG)
    plain = Scorer(build_baselines(messages, as_of=AS_OF))
    private = Scorer(build_baselines(messages, as_of=AS_OF, config=BaselineConfig(privacy=True), secrets=SECRETS),
                     secrets=SECRETS)
    attack = dict(CRAFTED, sender=f"attacker@{domain}", recipients="bob@acme.com")
    assert _directions(plain, [attack]) == _directions(private, [attack]) == ["inbound"]
    assert private.score_one(attack)["pair_messages"] == plain.score_one(attack)["pair_messages"]



def test_validate_maps_the_callers_columns_before_reading_tenants_and_addresses() -> None:
    # Scorer.validate(frame, columns={"tenant_id": "org"}) read the tenants (and a privacy tenant's addresses)
    # before the mapping: none found, the own domains were inferred from the batch, the attacker's mail internal.
    messages = validate(_history(), tenants=CONFIG)
    scorer = Scorer(build_baselines(messages, as_of=AS_OF, config=BaselineConfig(privacy=True), secrets=SECRETS),
                    secrets=SECRETS)
    frame = pd.DataFrame([CRAFTED, dict(CRAFTED, message_id="a2", recipients="pay@acme.com; x@evil.com")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing inferred
        renamed = scorer.validate(frame.rename(columns={"tenant_id": "org", "sender": "from"}),
                                  columns={"tenant_id": "org", "sender": "from"})
    assert renamed.frame["direction"].tolist() == scorer.validate(frame).frame["direction"].tolist() == ["inbound"] * 2
