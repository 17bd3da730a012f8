"""Configuration, smoothing and priors, lookups, and the tables' shape and budget."""

from __future__ import annotations

import re
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from commgraph.baselines import (
    TABLES, BaselineConfig, KeyIndex, build_baselines, fit_beta_prior, pair_keys, posterior_lower_bound,
    posterior_mean,
)
from commgraph.graph import CommGraphError, ConfigError, generate, stable_keys, validate


@pytest.fixture(scope="module")
def mail():
    g = generate(tenants=3, days=14, random_state=11, scale=0.3, attack_rate=0.02)
    return validate(g.messages, tenants=g.tenants)


# --------------------------------------------------------------------------- configuration

def test_config_from_toml_and_round_trip(tmp_path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('windows = ["12h", "7d"]\nhalf_life = "3d"\nlabel_policy = "ignore"\nsettle_delay = "2d"\n'
                    'global_prior = [3.0, 1.0]\n')
    cfg = BaselineConfig.from_toml(path)
    assert cfg.window_names == ("12h", "7d") and cfg.global_prior == (3.0, 1.0)
    assert BaselineConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(AttributeError):
        cfg.privacy = True  # frozen


def test_a_global_prior_is_checked_wherever_it_is_given(tmp_path) -> None:
    # refresh(global_prior=) took any value: alpha -1 gave likelihood 0 and a NaN lower bound, a pair raised
    # a bare TypeError, a missing beta a KeyError; TOML's table form was refused quoting only its keys.
    from commgraph.baselines import refresh

    (tmp_path / "c.toml").write_text("global_prior = {alpha = 9.0, beta = 1.0}\n")
    assert BaselineConfig.from_toml(tmp_path / "c.toml").global_prior == (9.0, 1.0)
    m = validate(pd.DataFrame({"tenant_id": "a", "message_id": ["1"], "timestamp": ["2024-05-01T09:00Z"],
                               "sender": "x@out.com", "recipients": "u@a.com"}),
                 tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}])
    snap = build_baselines(m, as_of="2024-05-02")["a"]
    for bad in ({"alpha": -1, "beta": 1}, {"alpha": float("nan"), "beta": 1}, {"alpha": 9.0}, "9,1"):
        with pytest.raises(ConfigError, match="'global_prior' parameter of refresh must give each kind a prior"):
            refresh(snap, None, as_of="2024-05-03", global_prior={"sender": bad})
    for good in ((9.0, 1.0), {"alpha": 9.0, "beta": 1.0}):
        later = refresh(snap, None, as_of="2024-05-03", global_prior={"sender": good})
        assert (later.priors["global"]["sender"]["alpha"], later.priors["global"]["sender"]["beta"]) == (9.0, 1.0)


@pytest.mark.parametrize("field, value, message", [
    ("windows", [], "'windows' parameter of BaselineConfig must be a non-empty list"),
    ("windows", ["7d", "7d"], "distinct"),
    ("windows", ["90m"], "whole numbers of hours"),
    ("half_life", "soon", "'half_life' parameter of BaselineConfig must be a timedelta > 0"),
    ("half_life", "107000d", "a timedelta > 0 of at most 292 years"),  # (pandas' bare OverflowError, before)
    ("settle_delay", 10**12, "a timedelta > 0 of at most 292 years"),
    ("label_policy", "trust", "one of 'presume_safe', 'ignore'. Got 'trust' instead."),
    ("settle_delay", "100d", "<= the longest window (90d)"),
    ("credible_level", 1.5, "a float in [0.5, 1)"),
    ("global_prior", (1.0, -1.0), "a pair of finite numbers (alpha, beta) > 0"),
    ("global_prior", (float("inf"), 1.0), "finite numbers"),
    ("global_prior", {"alpha": 9.0}, "Got {'alpha': 9.0} instead"),
    ("top_display_names", 0, "an int >= 1. Got 0 instead."),
    ("min_prior_entities", float("nan"), "an int >= 1. Got nan instead."),  # (a bare ValueError, before)
    ("min_prior_entities", float("inf"), "an int >= 1. Got inf instead."),
    ("known_contact_domains", 10**20, "an int in [0, 2 ** 53]"),  # (an OverflowError in the build, before)
])
def test_config_errors_name_the_field_and_the_allowed_values(field, value, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        BaselineConfig(**{field: value})


def test_unknown_config_fields_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown field 'window'"):
        BaselineConfig.from_dict({"window": ["7d"]})
    with pytest.raises(ConfigError, match="unknown field 'halflife'"):  # (a bare TypeError, before)
        BaselineConfig().evolve(halflife="7d")


def test_numpy_numbers_are_read_as_python_s_are() -> None:
    # A number read from pandas is numpy's: np.int64(604800) seconds became 605 microseconds (pd.Timedelta reads
    # a bare numpy number as nanoseconds), every decayed count 0 and every message presumed safe at once.
    python = BaselineConfig(windows=[86_400, "7d"], half_life=604_800, settle_delay=3_600.0, top_display_names=2,
                            credible_level=0.75)
    numpy = BaselineConfig(windows=[np.int64(86_400), "7d"], half_life=np.int32(604_800),
                           settle_delay=np.float32(3_600.0), top_display_names=np.int64(2),
                           credible_level=np.float32(0.75))
    assert numpy == python and repr(numpy) == repr(python)
    assert python.half_life == pd.Timedelta(days=7) and type(numpy.top_display_names) is int


def test_durations_of_a_fraction_of_a_second_survive_the_manifest(tmp_path) -> None:
    # to_dict wrote 1.5 s as '1s' and 0.5 s as '0d': a published snapshot loaded with another half-life, or not at
    # all (its manifest refused), and the tenant could never be refreshed, scored or replaced again.
    from commgraph.baselines import SnapshotStore

    m = validate(pd.DataFrame({"tenant_id": "a", "message_id": ["1", "2"], "timestamp": ["2024-05-01T09:00Z",
                 "2024-05-02T09:00Z"], "sender": "x@out.com", "recipients": "u@a.com"}),
                 tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}])
    for seconds in (1.5, 0.5):
        config = BaselineConfig(half_life=seconds, settle_delay=seconds)
        assert BaselineConfig.from_dict(config.to_dict()) == config
        store = SnapshotStore(tmp_path / str(seconds))
        store.publish(build_baselines(m, as_of="2024-05-03", config=config)["a"])
        assert store.load("a").config == config
    with pytest.raises(ConfigError, match="in whole microseconds"):  # (a timedelta would have held another one)
        BaselineConfig(half_life=pd.Timedelta(1_500, "ns"))


def test_a_toml_file_says_a_default_it_contradicts_and_shares_its_baselines_table(tmp_path) -> None:
    # Shorter windows blamed settle_delay, which the file never wrote, as "it holds datetime.timedelta(days=7)";
    # a [baselines] table beside another tool's table was refused as an unknown field 'baselines'.
    path = tmp_path / "b.toml"
    path.write_text('windows = ["1d", "3d"]\n')
    with pytest.raises(ConfigError, match="'settle_delay' must be .*; left out, it is the default '7d'"):
        BaselineConfig.from_toml(path)
    path.write_text('[baselines]\nhalf_life = "7d"\n\n[job]\njobs = 2\n')
    assert BaselineConfig.from_toml(path) == BaselineConfig(half_life="7d")
    path.write_text('privacy = true\n[baselines]\nhalf_life = "7d"\n')
    with pytest.raises(ConfigError, match=r"has a \[baselines\] table and fields outside it \('privacy'\)"):
        BaselineConfig.from_toml(path)


# --------------------------------------------------------------------------- smoothing

def test_prior_fit_is_the_maximum_of_scipys_betabinom_likelihood() -> None:
    rng = np.random.default_rng(4)
    n = rng.integers(1, 40, 3000)
    k = stats.betabinom.rvs(n, 6.0, 1.5, random_state=rng)
    a, b = fit_beta_prior(k, n)

    def nll(theta):
        return -stats.betabinom.logpmf(k, n, *np.exp(theta)).sum()

    reference = optimize.minimize(nll, np.log([1.0, 1.0]), method="Nelder-Mead",
                                  options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 4000})
    assert nll(np.log([a, b])) <= reference.fun + 1e-6
    np.testing.assert_allclose([a, b], np.exp(reference.x), rtol=2e-3)
    assert abs(a / (a + b) - 0.8) < 0.02


def _distinct(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pairs, counts = np.unique(np.stack([n, k], axis=1), axis=0, return_counts=True)
    return pairs[:, 0].astype(float), pairs[:, 1].astype(float), counts


def _datasets() -> list[tuple[np.ndarray, np.ndarray]]:
    """(k, n) per entity: interior optima, a ridge (no overdispersion: binomial data, alpha and beta
    both run large), all-safe data (an optimum on the bound), single trials, a few entities."""
    rng = np.random.default_rng(7)
    out = []
    for a, b, size, top in ((6.0, 1.5, 3000, 40), (0.4, 0.3, 800, 12), (40.0, 3.0, 500, 200)):
        n = rng.integers(1, top, size)
        out.append((stats.betabinom.rvs(n, a, b, random_state=rng), n))
    n = rng.integers(1, 60, 2000)
    out.append((rng.binomial(n, 0.97), n))  # the binomial limit: a ridge towards the upper bounds
    out.append((rng.integers(0, 2, 500), np.ones(500, np.int64)))  # one trial each: flat along a ridge
    out.append((np.array([3, 0, 5]), np.array([4, 2, 5])))
    return out


def test_batched_prior_fits_reach_scipys_optimum_each_as_if_alone() -> None:
    from commgraph.baselines._smoothing import fit_summary, fit_summary_list

    data = _datasets()
    summaries = [_distinct(k, n) for k, n in data]
    alpha, beta = fit_summary_list(summaries)
    for (n_u, k_u, w), a, b in zip(summaries, alpha, beta):
        assert (a, b) == fit_summary(n_u, k_u, w)  # the same bits alone
        best = _lbfgsb_best(k_u, n_u, w, [[0.0, 0.0], [5.0, 2.0], np.log([a, b])])
        assert _loglik(k_u, n_u, w, a, b) >= best - max(1e-6, 1e-9 * abs(best))


def _lbfgsb_best(k: np.ndarray, n: np.ndarray, w: np.ndarray, starts: list) -> float:
    """The highest Beta-binomial log-likelihood scipy's L-BFGS-B finds in the box, from several starts."""
    from commgraph.baselines._smoothing import _LOG_BOUNDS

    def nll(theta):
        return -float(w @ stats.betabinom.logpmf(k, n, *np.exp(theta)))

    return max(-optimize.minimize(nll, start, method="L-BFGS-B", bounds=[_LOG_BOUNDS] * 2,
                                  options={"ftol": 1e-15, "gtol": 1e-10}).fun for start in starts)


def _loglik(k: np.ndarray, n: np.ndarray, w: np.ndarray, a: float, b: float) -> float:
    return float(w @ stats.betabinom.logpmf(k, n, a, b))


def test_prior_fit_reaches_the_optimum_where_a_newton_search_stalls() -> None:
    # Cases where the search used to stop short: on a bound, crawling along the other parameter;
    # zig-zagging with gradient steps in an ill-conditioned valley until its step limit.
    import json
    from pathlib import Path

    from commgraph.baselines._smoothing import fit_summary

    cases = json.loads((Path(__file__).parent / "data" / "prior_fit_cases.json").read_text())
    for name, case in cases.items():
        n, k, w = (np.array(case[c], np.int64) for c in ("n", "k", "weight"))
        a, b = fit_summary(n, k, w)
        best = _lbfgsb_best(k, n, w, [[0.0, 0.0], [5.0, 5.0], [-1.0, 6.0], [6.0, -2.0], np.log([a, b])])
        assert _loglik(k, n, w, a, b) >= best - max(1e-5, 1e-9 * abs(best)), (name, case["why"], np.log([a, b]))


def test_prior_fits_of_varied_data_reach_scipys_optimum() -> None:
    # Zipf-distributed trials as entities have them, rates from all-safe to mostly attacks, from
    # overdispersed to binomial (a ridge): within max(1e-3, 1e-6 relative) of L-BFGS-B's best.
    from commgraph.baselines._smoothing import fit_summary_list

    rng = np.random.default_rng(21)
    data = []
    for _ in range(24):
        n = np.minimum(rng.zipf(1.6, int(rng.integers(20, 3000))), 5000)
        a, b = np.exp(rng.uniform(-3, 9)), np.exp(rng.uniform(-5, 6))
        k = stats.betabinom.rvs(n, a, b, random_state=rng) if rng.random() < 0.8 else rng.binomial(n, rng.random())
        data.append(_distinct(k, n))
    alpha, beta = fit_summary_list(data)
    for (n_u, k_u, w), a, b in zip(data, alpha, beta):
        best = _lbfgsb_best(k_u, n_u, w, [[0.0, 0.0], [6.0, 3.0], np.log([a, b])])
        assert _loglik(k_u, n_u, w, a, b) >= best - max(1e-3, 1e-6 * abs(best)), np.log([a, b])


def test_prior_fit_of_all_safe_mail_is_the_corner() -> None:
    # The likelihood rises towards alpha -> infinity, beta -> 0: the fit ends in that corner of the box.
    from commgraph.baselines._smoothing import _LOG_BOUNDS

    n = np.random.default_rng(0).integers(1, 30, 300)
    a, b = fit_beta_prior(n, n)
    assert (np.log(a), np.log(b)) == pytest.approx((_LOG_BOUNDS[1], _LOG_BOUNDS[0]))


@pytest.mark.parametrize(("n", "k", "weight", "bounds", "message"), [
    ([3], [-1], [1], [0, 1], r"0 <= k <= n .* pairs \[0\] have \(n, k, weight\) \[\(3.0, -1.0, 1.0\)\]"),
    ([3], [1.5], [1], [0, 1], "whole counts"),
    ([3, 2], [1, 4], [1, 1], [0, 2], r"pairs \[1\]"),
    ([0], [0], [1], [0, 1], "1 <= n"),
    ([3], [1], [np.nan], [0, 1], "finite weight"),
    ([3], [1], [1], [0, 0.5, 1], "whole offsets"),
    ([3, 2], [1, 1], [1, 1], [0, 1], "run from 0 to the number of pairs"),
    ([3], [1], [0], [0, 1], "total weight > 0"),
])
def test_prior_fits_refuse_bad_summaries(n, k, weight, bounds, message) -> None:
    from commgraph.baselines._smoothing import fit_summaries

    with pytest.raises(ConfigError, match=message):
        fit_summaries(*(np.array(v, dtype=float) for v in (n, k, weight)), np.array(bounds))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.floats(0.0, 1.0), st.integers(1, 400)), min_size=1, max_size=6),
       st.randoms(use_true_random=False))
def test_a_prior_fit_does_not_depend_on_the_others_in_its_batch(specs, rnd) -> None:
    from commgraph.baselines._smoothing import fit_summary, fit_summary_list

    summaries = []
    for top, rate, size in specs:
        rng = np.random.default_rng(rnd.randrange(2**32))
        n = rng.integers(1, top + 1, size)
        summaries.append(_distinct(rng.binomial(n, rate), n))
    order = list(range(len(summaries)))
    rnd.shuffle(order)
    shuffled = [summaries[i] for i in order]
    alpha, beta = fit_summary_list(shuffled)
    for i, a, b in zip(order, alpha.tolist(), beta.tolist()):
        assert (a, b) == fit_summary(*summaries[i])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2000), st.floats(0.0, 1.0), st.integers(1, 300), st.integers(1, 50)),
                min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_a_prior_fit_does_not_depend_on_the_order_of_its_pairs(specs, rnd) -> None:
    # A backfill lists a fit's distinct (n, k) in another order than a snapshot does; both must land on
    # the same bits (sums of whole numbers, values sorted before the search), from the start onwards.
    from commgraph.baselines._smoothing import fit_summary_list

    summaries, shuffled = [], []
    for top, rate, size, most in specs:
        rng = np.random.default_rng(rnd.randrange(2**32))
        n = rng.integers(1, top + 1, size)
        n_u, k_u, w = _distinct(rng.binomial(n, rate), n)
        w = w * rng.integers(1, most + 1, len(w))  # pooled weights: several tenants per pair
        order = rng.permutation(len(n_u))
        summaries.append((n_u, k_u, w))
        shuffled.append((n_u[order], k_u[order], w[order]))
    assert [x.tolist() for x in fit_summary_list(summaries)] == [x.tolist() for x in fit_summary_list(shuffled)]


def test_a_large_batch_of_prior_fits_takes_compiled_passes_to_the_same_bits() -> None:
    # Batches of _COMPILED_FROM fits or more (a backfill's) sum through numba kernels, a snapshot's few fits
    # through numpy: each fit's bits must not depend on which (the backfill's priors are the snapshots').
    from commgraph.baselines._smoothing import _COMPILED_FROM, _trigamma, _trigamma_compiled, fit_summary_list

    rng = np.random.default_rng(5)
    summaries = []
    for i in range(_COMPILED_FROM + 40):
        n = np.minimum(rng.zipf(1.5, int(rng.integers(1, 400))), [3, 60, 5000][i % 3])
        a, b = np.exp(rng.uniform(-3, 7)), np.exp(rng.uniform(-4, 4))
        k = stats.betabinom.rvs(n, a, b, random_state=rng) if i % 4 else rng.binomial(n, rng.random())
        n_u, k_u, w = _distinct(k, n)
        summaries.append((n_u, k_u, w * rng.integers(1, 4, len(w)) if i % 5 == 0 else w))
    together = [x.tolist() for x in fit_summary_list(summaries)]
    chunks = [fit_summary_list(summaries[i:i + 100]) for i in range(0, len(summaries), 100)]  # numpy's passes
    assert together == [np.concatenate([c[j] for c in chunks]).tolist() for j in range(2)]
    x = np.concatenate([np.geomspace(np.exp(-7), 1e7, 5_001), np.arange(0, 40) + 0.5])
    assert _trigamma_compiled(x, np.empty_like(x)).tolist() == _trigamma(x).tolist()


def test_trigamma_of_the_prior_fit_equals_scipys_hurwitz_zeta() -> None:
    from commgraph.baselines._smoothing import _SERIES_FROM, _trigamma

    # Every regime the fit meets: priors near their bounds (exp(-7), exp(12)), small counts plus a
    # prior, both sides of where the series takes over, and counts in the millions.
    x = np.concatenate([np.geomspace(np.exp(-7), 1e7, 20_001), np.arange(0, 200) + np.exp(-7),
                        np.nextafter(_SERIES_FROM, [0.0, np.inf]), np.arange(1, 5000) + 0.37])
    np.testing.assert_allclose(_trigamma(x), special.zeta(2, x), rtol=5e-14, atol=0)


def test_posterior_and_lower_bound() -> None:
    k, n = np.array([0, 5, 10]), np.array([0, 10, 10])
    np.testing.assert_allclose(posterior_mean(k, n, 2.0, 2.0), (k + 2) / (n + 4))
    lo = posterior_lower_bound(k, n, 2.0, 2.0, level=0.9)
    np.testing.assert_allclose(lo, stats.beta.ppf(0.1, k + 2, n - k + 2))
    assert np.all(lo < posterior_mean(k, n, 2.0, 2.0))
    with pytest.raises(ConfigError, match="'successes' must be in"):
        posterior_mean(np.array([3]), np.array([2]), 1.0, 1.0)


def test_likelihood_columns_use_the_tenant_prior_or_borrow_the_global_one(mail) -> None:
    snaps = build_baselines(mail, as_of="2025-01-18", config=BaselineConfig(min_prior_labels=5))
    big = snaps["tenant-01"]
    assert big.priors["sender"]["source"] == "tenant"
    s = big.table("sender")
    safe = s["n_safe"] + s["n_presumed_safe"].clip(lower=0)
    trials = safe + s["n_attack"] + s["n_spam"]
    a, b = big.priors["sender"]["alpha"], big.priors["sender"]["beta"]
    np.testing.assert_allclose(s["likelihood_safe"], (safe + a) / (trials + a + b), rtol=1e-6)
    attacked = s["n_attack"] > 0
    assert s.loc[attacked, "likelihood_safe"].mean() < s.loc[~attacked, "likelihood_safe"].mean()
    # A newly onboarded tenant with too little labelled mail borrows the global prior.
    cold = build_baselines(mail, as_of="2025-01-18", config=BaselineConfig(min_prior_labels=10**9))
    for snap in cold.values():
        for kind in ("sender", "sender_domain", "pair", "recipient"):
            assert snap.priors[kind]["source"] == "global"
            assert snap.priors[kind]["alpha"] == snap.priors["global"][kind]["alpha"]


def test_label_policy_ignore_counts_explicit_labels_only(mail) -> None:
    snap = build_baselines(mail, as_of="2025-01-18", config=BaselineConfig(label_policy="ignore",
                                                                             global_prior=(1.0, 1.0),
                                                                             min_prior_labels=10**9))
    r = snap["tenant-01"].table("recipient")
    unlabelled = (r["n_safe"] + r["n_attack"] + r["n_spam"]) == 0
    np.testing.assert_allclose(r.loc[unlabelled, "likelihood_safe"], 0.5)


# --------------------------------------------------------------------------- lookups and budget

def test_key_index_matches_a_dictionary() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**63, 50_000, dtype=np.uint64) * np.uint64(2)
    index = KeyIndex.build(keys)
    queries = np.concatenate([keys[rng.integers(0, len(keys), 20_000)], keys[:100] + np.uint64(1)])
    expected = pd.Index(keys).get_indexer(queries)
    np.testing.assert_array_equal(index.get(queries), expected)
    assert index.nbytes / len(keys) <= 16


def test_key_index_wraps_keys_homed_at_the_end_of_the_table_around_to_its_start() -> None:
    """Keys crafted to crowd the last slots (and the first) spill past the end while the index is
    built; every key is still found, every row is placed once, and absent keys miss."""
    golden_inverse = pow(0x9E3779B97F4A7C15, -1, 2**64)
    rng = np.random.default_rng(5)
    for n in (1, 3, 4, 17, 200, 3000):
        size = 8
        while size < 2 * n:
            size *= 2
        shift = 64 - (size.bit_length() - 1)
        homes = np.concatenate([rng.integers(size - 3, size, n - n // 3), rng.integers(0, 3, n // 3)])
        low = rng.integers(0, 2**min(shift, 62), n)
        keys = np.array(sorted({((int(h) << shift) | int(v)) * golden_inverse % 2**64 for h, v in zip(homes, low)}),
                        dtype=np.uint64)
        index = KeyIndex.build(keys)
        assert np.array_equal(np.sort(index.slots[index.slots >= 0]), np.arange(len(keys)))
        queries = np.concatenate([keys, keys ^ np.uint64(1)])
        np.testing.assert_array_equal(index.get(queries), pd.Index(keys).get_indexer(queries))


def test_lookup_by_address_and_pair(mail) -> None:
    snap = build_baselines(mail, as_of="2025-01-18")["tenant-02"]
    pairs = snap.table("pair").sample(50, random_state=0)
    pos = snap.lookup("pair", stable_keys(pairs["sender"]), stable_keys(pairs["recipient"]))
    np.testing.assert_array_equal(pos, pairs.index.to_numpy())
    np.testing.assert_array_equal(snap.lookup("pair", pair_keys(stable_keys(pairs["sender"]),
                                                                stable_keys(pairs["recipient"]))), pos)
    # Another tenant's sender is unknown here: isolation at lookup level.
    other = build_baselines(mail, as_of="2025-01-18")["tenant-03"].table("sender")["sender"]
    foreign = sorted(set(other) - set(snap.table("sender")["sender"]))[:20]
    assert (snap.lookup("sender", stable_keys(foreign)) == -1).all()
    with pytest.raises(CommGraphError, match="2 sender keys and 3 recipient keys"):  # (numpy's broadcast error)
        snap.lookup("pair", stable_keys(pairs["sender"][:2]), stable_keys(pairs["recipient"][:3]))


def test_tables_and_bytes_per_sender_row(mail) -> None:
    snap = build_baselines(mail, as_of="2025-01-18")["tenant-01"]
    assert set(snap.tables) == set(TABLES)
    sender = snap.arrow("sender")
    strings = [c for c in sender.column_names if c in ("sender", "display_names")]
    without = sender.drop_columns(strings)
    assert without.nbytes / sender.num_rows <= 256
    read_by_signals = ["sender_key", "n_messages_30d", "n_messages", "first_seen", "last_seen", "active_days",
                       "n_written_to", "likelihood_safe"]
    assert (sender.select(read_by_signals).nbytes + snap.index("sender").nbytes) / sender.num_rows <= 100


def test_an_as_of_given_as_text_is_read_as_iso_8601_only() -> None:
    # '01/02/2025' was read month first: snapshots as of 2 January for whoever meant 1 February (the job's
    # --as-of refused it; build_baselines, refresh, observe and build_graph took it).
    from commgraph.baselines import refresh
    from commgraph.graph import ConfigError, build_graph, validate
    from commgraph.signals import Scorer

    m = validate(pd.DataFrame([dict(tenant_id="t", message_id="m1", timestamp="2024-12-15T10:00:00Z",
                                    sender="a@x.com", recipients="b@t.com", direction="inbound")]))
    snap = build_baselines(m, as_of="2025-01-02T00:00Z")["t"]
    for call in (lambda: build_baselines(m, as_of="01/02/2025"), lambda: refresh(snap, None, as_of="01/03/2025"),
                 lambda: Scorer({"t": snap}).observe(m, as_of="01/03/2025"),
                 lambda: build_graph(m, tenant_id="t", as_of="01/02/2025 00:00+00:00"),
                 # 'now' and 'today' were the clock to pandas: a snapshot no rerun repeats, against the contract.
                 lambda: build_baselines(m, as_of="now"), lambda: refresh(snap, None, as_of=" Today"),
                 lambda: Scorer({"t": snap}).observe(m, as_of="NOW"), lambda: build_graph(m, tenant_id="t",
                                                                                           as_of="today")):
        with pytest.raises(ConfigError, match="ISO 8601|must be a timestamp"):
            call()
    assert build_baselines(m, as_of="2025-01-02")["t"].as_of == snap.as_of  # ISO dates and instants still do


def test_an_internal_address_spoofed_from_outside_is_no_first_time_sender() -> None:
    # A pair with inbound mail counted as begun by a first-time sender when its first edge, of any direction,
    # came with the sender's first message: ann's internal mail to bob, then mail under her address arriving
    # from outside (a gateway's "inbound"), made bob's inbound mail 100% from first-time senders.
    from commgraph.signals import backfill

    rows = pd.DataFrame({
        "tenant_id": "acme", "message_id": ["m1", "m2", "m3", "m4", "m5"],
        "timestamp": ["2024-01-02T09:00Z", "2024-02-01T09:00Z", "2024-03-01T09:00Z", "2024-03-02T09:00Z",
                      "2024-03-03T09:00Z"],
        "sender": ["ann@acme.com", "ann@acme.com", "ann@acme.com", "eve@out.com", "cy@acme.com"],
        "recipients": ["bob@acme.com", "cy@acme.com", "bob@acme.com", "bob@acme.com", "bob@acme.com"],
        "direction": ["internal", "internal", "inbound", "inbound", "internal"]})
    m = validate(rows, tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    snap = build_baselines(m, as_of="2024-04-01")["acme"]
    bob = snap.table("recipient").set_index("recipient").loc["bob@acme.com"]
    assert (bob["n_inbound"], bob["n_first_time_inbound"], bob["first_time_share"]) == (2, 1, 0.5)  # eve only
    rates = backfill(m).set_index("message_id")["recipient_first_contact_rate"]
    assert rates["m4"] == 0.0 and rates["m5"] == 0.5  # (m4: ann's spoofed mail before it, no first-time one)
    # A state stored before pairs kept their first inbound time (no such table; the previous commgraph reads
    # the new one's, which keeps its pair columns): a pair with inbound mail began with it, as that commgraph
    # counted; and the new state round-trips.
    from commgraph.baselines._snapshot import FIRST_INBOUND, _state_from_arrow

    tables = build_baselines(m, as_of="2024-03-05")["acme"].state_tables()
    assert "first_inbound" not in tables["lifetime.pair"].column_names
    exact = _state_from_arrow("acme", tables).lifetime["pair"].values
    old = _state_from_arrow("acme", {k: v for k, v in tables.items() if k != FIRST_INBOUND}).lifetime["pair"].values
    assert exact["first_inbound"].tolist() != old["first_inbound"].tolist()  # (ann's spoofed pair)
    assert np.array_equal(old["first_inbound"], np.where(old["n_inbound"] > 0, old["first_seen"],
                                                         np.iinfo(np.int64).max))


@pytest.mark.parametrize("as_of, words", [
    (1736294400, "a number is no instant"), (np.int64(1736294400), "a number is no instant"),
    (1736294400.0, "a number is no instant"), ("9999-12-31T00:00Z", "outside the years 1677-2262"),
    ("1600-01-01T00:00Z", "outside the years 1677-2262"),
])
def test_an_instant_that_is_a_number_or_out_of_range_is_refused_everywhere(tmp_path, as_of, words) -> None:
    # A number was read as nanoseconds after 1970 (1736294400: 1.7 s into 1970, empty baselines, every sender
    # new), where a timestamp column reads it as seconds; 9999 passed and overflowed later (after observe, every
    # score raised an OverflowError for good).
    from commgraph.baselines import run_refresh
    from commgraph.graph import build_graph, read_messages
    from commgraph.signals import Scorer

    tenants = [{"tenant_id": "a", "own_domains": ["a.com"]}]
    frame = pd.DataFrame({"tenant_id": "a", "message_id": ["1"], "timestamp": ["2025-01-01T09:00Z"],
                          "sender": "x@out.com", "recipients": "u@a.com"})
    m = validate(frame, tenants=tenants)
    scorer = Scorer(build_baselines(m, as_of="2025-01-02"), tenant_configs=tenants)
    frame.to_parquet(tmp_path / "mail.parquet")
    calls = [lambda: build_baselines(m, as_of=as_of), lambda: build_graph(m, tenant_id="a", as_of=as_of),
             lambda: scorer.observe(m, as_of=as_of), lambda: read_messages(tmp_path / "mail.parquet", since=as_of),
             lambda: run_refresh(tmp_path / "mail.parquet", store=tmp_path / "s", as_of=as_of, tenant_configs=tenants)]
    for call in calls:
        with pytest.raises(ConfigError, match=words):
            call()
    assert scorer.score(m).shape[0] == 1  # (the refused observe left the scorer as it was)


def test_a_configuration_shows_its_durations_as_written_and_reads_its_repr_back() -> None:
    # (datetime.timedelta(days=7) three times over in a notebook, before)
    config = BaselineConfig(windows=("7d", "36h"), half_life="1.001s", settle_delay="90min", global_prior=(2, 1))
    text = repr(config)
    assert text.startswith("BaselineConfig(windows=('36h', '7d'), half_life='0 days 00:00:01.001000', ")
    assert "settle_delay='5400s'" in text and "global_prior=(2.0, 1.0)" in text
    assert eval(text, {"BaselineConfig": BaselineConfig}) == config


@pytest.mark.parametrize("privacy", [False, True])
def test_build_each_gives_every_tenant_what_its_mail_alone_gives(privacy):
    # build_baselines pools the cold-start prior over its tenants; build_each fits each tenant's from its own mail.
    from commgraph.baselines._build import build_each

    g = generate(tenants=3, days=10, scale=0.1, random_state=3)
    m = validate(g.messages, tenants=g.tenants)
    as_of = pd.Timestamp("2025-01-08", tz="UTC")
    config = BaselineConfig(privacy=privacy)
    secrets = {t: bytes([i + 1]) * 16 for i, t in enumerate(sorted(m.frame["tenant_id"].unique()))} if privacy \
        else None
    each = build_each(m, as_of=as_of, config=config, secrets=secrets)
    pooled = build_baselines(m, as_of=as_of, config=config, secrets=secrets)
    differ = 0
    for t in each:
        own = {t: secrets[t]} if secrets else None
        alone = build_baselines(m.subset((m.frame["tenant_id"] == t).to_numpy()), as_of=as_of, config=config,
                                secrets=own)[t]
        assert each[t].equals(alone), t
        differ += not pooled[t].equals(alone)
    assert sorted(each) == sorted(pooled) and differ  # (the pooled prior does change some tenant)
