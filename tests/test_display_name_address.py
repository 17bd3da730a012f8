"""An own-domain address shown as the display name is impersonation, the same on every path.

``"jane.doe@acme.com" <ceo@evil.com>`` shows the recipient an internal address
where a name would be; it matches no internal mailbox's name, so
``display_name_matches_internal`` read 0 while ``"Jane Doe" <ceo@evil.com>`` read 1.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commgraph.baselines import build_baselines
from commgraph.graph import validate
from commgraph.signals import Scorer, SignalSet, backfill, explain
from commgraph.signals._builtin_identity import claimed_own_address

AS_OF = pd.Timestamp("2025-02-01T00:00Z")
TENANTS = [{"tenant_id": "t", "own_domains": ["acme.com"]}]
SIGNAL = "display_name_matches_internal"
HISTORY = pd.DataFrame({
    "tenant_id": "t", "message_id": [f"h{i}" for i in range(6)],
    "timestamp": [AS_OF - pd.Timedelta(days=10 - i) for i in range(6)],
    "sender": ["Jane Doe <jane.doe@acme.com>"] * 3 + ["sales@globex.com"] * 3, "recipients": "ann@acme.com"})


def _every_path(senders: dict[str, str], tenants: list[dict] = TENANTS) -> dict[str, dict[str, int]]:
    later = pd.DataFrame({"tenant_id": "t", "message_id": list(senders), "timestamp": AS_OF,
                          "sender": list(senders.values()), "recipients": "ann@acme.com"})
    snapshots = build_baselines(validate(HISTORY, tenants=tenants), as_of=AS_OF)
    scorer = Scorer(snapshots, tenant_configs=tenants)
    got: dict[str, dict[str, int]] = {}
    for path, frame in (("batch", SignalSet().compute(validate(later, tenants=tenants), snapshots, level="message")),
                        ("score", scorer.score(later, level="message")),
                        ("backfill", backfill(validate(pd.concat([HISTORY, later], ignore_index=True),
                                                       tenants=tenants), level="message"))):
        got[path] = {m: int(v) for m, v in zip(frame["message_id"], frame[SIGNAL]) if m in senders}
    got["score_one"] = {m["message_id"]: int(scorer.score_one(m)[SIGNAL]) for m in later.to_dict("records")}
    got["explain"] = {m["message_id"]: int(explain(m, scorer).frame.set_index("signal").loc[SIGNAL, "value"])
                      for m in later.to_dict("records")}
    return got


def test_an_own_address_as_the_name_is_impersonation_on_every_path() -> None:
    senders = {"whole": '"jane.doe@acme.com" <ceo@evil.com>', "nested": '"Jane Doe <jane.doe@acme.com>" <x@evil.com>',
               "subdomain": '"it@mail.acme.com" <x@evil.com>', "her_own": '"jane.doe@acme.com" <jane.doe@acme.com>',
               "partner": '"bob@partner.org" <x@evil.com>', "via": '"jane.doe@acme.com via DocuSign" <d@docusign.net>'}
    want = {"whole": 1, "nested": 1, "subdomain": 1, "her_own": 0, "partner": 0, "via": 0}
    got = _every_path(senders)
    assert got == {path: want for path in got}
    scorer = Scorer(build_baselines(validate(HISTORY, tenants=TENANTS), as_of=AS_OF), tenant_configs=TENANTS)
    message = {"tenant_id": "t", "message_id": "x", "timestamp": AS_OF, "sender": senders["whole"],
               "recipients": "ann@acme.com"}
    sentence = explain(message, scorer).frame.set_index("signal").loc[SIGNAL, "sentence"]
    assert "shows the address jane.doe@acme.com" in sentence and "from outside" in sentence


def test_an_own_address_written_to_look_like_one_is_claimed_on_every_path() -> None:
    # The batch read the normalised name and score_one the raw one: a full-width @, a zero-width space or small
    # capitals claimed the address on one path and not the other. An internationalised own domain is claimed as
    # a mail client shows it, not only in punycode.
    senders = {"fullwidth": '"jane.doe\uff20acme.com" <ceo@evil.com>', "zwsp": '"jane.doe@acme\u200b.com" <x@evil.com>',
               "small_caps": '"\u1d0a\u1d00\u0274\u1d07@\u1d00\u1d04\u1d0d\u1d07.\u1d04\u1d0f\u1d0d" <x@evil.com>',
               "encoded": "=?utf-8?q?jane=40acme=2Ecom?= <x@evil.com>"}
    got = _every_path(senders)
    assert got == {path: dict.fromkeys(senders, 1) for path in got}
    tenants = [{"tenant_id": "t", "own_domains": ["acme.com", "bücher.de"]}]
    idn = {"unicode": '"ceo@bücher.de" <x@evil.com>', "upper": '"CEO@BÜCHER.DE" <x@evil.com>',
           "punycode": '"ceo@xn--bcher-kva.de" <x@evil.com>'}
    got = _every_path(idn, tenants=tenants)
    assert got == {path: dict.fromkeys(idn, 1) for path in got}
    # Her own address as her client shows it, on her own mail: the claimed address and the sender compare in one
    # form (the normalised name's: punycode decoded, accents stripped), never flagged.
    own = {"idn": '"ceo@bücher.de" <ceo@bücher.de>', "punycode_sender": '"ceo@bücher.de" <ceo@xn--bcher-kva.de>',
           "accented_local": '"jöhn@acme.com" <jöhn@acme.com>'}
    got = _every_path(own, tenants=tenants)
    assert got == {path: dict.fromkeys(own, 0) for path in got}


@pytest.mark.filterwarnings("ignore::commgraph.graph.InferredOwnDomainsWarning")
def test_without_configured_own_domains_nothing_is_claimed() -> None:
    # The rule reads the configured own domains, as the look-alike check does: a scorer knows no others.
    got = _every_path({"whole": '"jane.doe@acme.com" <ceo@evil.com>'}, tenants=[])
    assert got == {path: {"whole": 0} for path in got}


_LOCAL = st.text(alphabet="abcdefghij.-_+", min_size=1, max_size=8).filter(lambda t: t.strip(".") == t)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(local=_LOCAL, domain=st.sampled_from(["acme.com", "mail.acme.com", "acme.co", "evil.com", "xacme.com"]),
       wrap=st.sampled_from(["{}", '"{}"', "'{}'", "<{}>", "({})", "Jane <{}>", " {} ", "{}.", "x {}", "{} y"]))
def test_an_address_is_claimed_whole_or_in_angle_brackets_at_an_own_domain_only(local, domain, wrap) -> None:
    name = wrap.format(f"{local}@{domain}")
    got = claimed_own_address(name, ("acme.com",))
    own = domain in ("acme.com", "mail.acme.com")
    shown = wrap not in ("x {}", "{} y")  # a name that merely mentions an address claims nothing
    assert got == (f"{local}@{domain}".lower() if own and shown else None)
