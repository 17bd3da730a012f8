"""The scikit-learn transformer: mail in, one row of baseline signals per message out."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import check_is_fitted

from commgraph.baselines import BaselineConfig, build_baselines
from commgraph.baselines._build import _config, _timestamp
from commgraph.graph import ConfigError, Messages, TenantConfig, validate

from ._signal_set import SignalSet, stack

__all__ = ["BaselineSignals"]


class BaselineSignals(TransformerMixin, BaseEstimator):
    """Baseline signals as model features: ``fit`` builds baselines, ``transform`` scores messages.

    Parameters
    ----------
    as_of : timestamp-like, optional
        The instant the baselines describe; default just after the last fitted message.
    tenants : list of TenantConfig or mappings, optional
        Own domains per tenant (for validating the message frames).
    signal_set : SignalSet or list of str, optional
        The signals (default: every built-in). Only numeric columns are output.
    baseline_config : BaselineConfig or mapping, optional
        Windows, half-life, label policy... (default ``BaselineConfig()``).
    cold_start : bool, default False
        At ``transform``, score tenants unseen at ``fit`` with the global prior
        instead of raising.

    Attributes
    ----------
    snapshots_ : dict of str to Snapshot
        The baselines built at ``fit`` (counts and keys, not the messages).
    as_of_ : pandas.Timestamp
    signal_set_ : SignalSet
        The signals ``fit`` was given: ``transform`` computes these, whatever
        ``signal_set`` is set to since (a new one takes effect at the next ``fit``).
    tenants_ : list of TenantConfig or None
        The ``tenants`` ``fit`` was given, which ``transform`` reads batches
        with, as it does ``signal_set_``.
    feature_names_out_ : ndarray of str
    own_domains_ : dict of str to tuple of str
        Each tenant's own domains as ``fit`` read its mail (configured, or
        inferred from all of it); ``transform`` reads batches with them when
        ``tenants`` is not given, so a message's values never depend on the
        other mail of its batch.
    inferred_own_ : frozenset of str
        The tenants among them whose own domains fit inferred: transform reads
        directions by them, and the look-alike signals leave them out as a
        scorer does (configured own domains only).

    Notes
    -----
    ``transform`` scores every message against the fitted baselines as
    deployed. ``fit_transform`` on the training mail therefore scores it
    against baselines that already contain it (no message looks new to
    itself): fit on an earlier period than the one you train the model on,
    or train on :func:`commgraph.signals.backfill`, which values each message
    from the mail strictly before it.

    Examples
    --------
    >>> frame = pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2", "3"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z"],
    ...     "sender": ["ann@vendor.com", "ann@vendor.com", "eve@evil.com"], "recipients": "cy@acme.com"})
    >>> t = BaselineSignals(tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}],
    ...                     signal_set=["sender", "pair"]).set_output(transform="pandas")
    >>> t.fit(frame.iloc[:2]).transform(frame)[["sender_is_new", "pair_messages"]]
       sender_is_new  pair_messages
    0            0.0            2.0
    1            0.0            2.0
    2            1.0            0.0
    """

    _parameter_constraints: dict = {
        "as_of": [None, str, _dt.datetime, np.datetime64],
        "tenants": [None, list, tuple, dict, str],
        "signal_set": [None, SignalSet, list, tuple],
        "baseline_config": [None, BaselineConfig, dict],
        "cold_start": ["boolean"],
    }

    def __init__(self, *, as_of: Any = None, tenants: Any = None, signal_set: Any = None,
                 baseline_config: Any = None, cold_start: bool = False):
        self.as_of = as_of
        self.tenants = tenants
        self.signal_set = signal_set
        self.baseline_config = baseline_config
        self.cold_start = cold_start

    def _signals(self) -> SignalSet:
        return self.signal_set if isinstance(self.signal_set, SignalSet) else SignalSet(self.signal_set)

    def _messages(self, X: Any, tenants: Any) -> Messages:
        if isinstance(X, Messages):
            return X
        if not isinstance(X, pd.DataFrame):
            raise ConfigError(f"BaselineSignals takes mail as a DataFrame in the message contract (or Messages). "
                              f"Got {type(X).__name__} instead.")
        return validate(X, tenants=tenants)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> "BaselineSignals":
        """Build the baselines of every tenant in ``X``.

        Parameters
        ----------
        X : DataFrame or Messages
            Mail in the message contract.
        y : ignored

        Returns
        -------
        self

        Examples
        --------
        >>> frame = pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "timestamp": ["2024-05-01T09:00Z"],
        ...                       "sender": ["a@t.com"], "recipients": ["b@t.com"], "direction": ["internal"]})
        >>> BaselineSignals().fit(frame).as_of_
        Timestamp('2024-05-01 09:00:00.000000001+0000', tz='UTC')
        """
        if _config(self.baseline_config, "BaselineSignals").privacy:
            raise ConfigError("BaselineSignals builds and scores baselines of the mail it is given in the clear, "
                              "which privacy mode exists to keep out of reach; score privacy-mode snapshots with "
                              "Scorer(snapshots, secrets=...) (or Scorer.from_store), or fit without privacy mode "
                              "where raw mail may be read")
        self.tenants_ = self.tenants
        messages = self._messages(X, self.tenants_)
        self.own_domains_ = dict(messages.own_domains)
        self.inferred_own_ = frozenset(messages.inferred_own)  # (no look-alike targets: see transform)
        if self.as_of is not None:
            as_of = _timestamp(self.as_of, "as_of", "BaselineSignals")  # (text in ISO 8601 only, as build_baselines)
        else:
            if not len(messages):
                raise ConfigError("BaselineSignals.fit needs at least one message (or an explicit as_of)")
            as_of = messages.frame["timestamp"].max() + pd.Timedelta(1, "ns")  # only mail strictly before counts
        self.as_of_ = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
        self.snapshots_ = build_baselines(messages, as_of=self.as_of_, config=self.baseline_config)
        self.signal_set_ = self._signals()
        self.feature_names_out_ = np.asarray(self.signal_set_.names, dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """One row of signals per input message, in the input's order (message-level aggregation).

        Parameters
        ----------
        X : DataFrame or Messages

        Returns
        -------
        ndarray of float32, shape (n_messages, n_signals)

        Examples
        --------
        >>> frame = pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "timestamp": ["2024-05-01T09:00Z"],
        ...                       "sender": ["a@t.com"], "recipients": ["b@t.com"], "direction": ["internal"]})
        >>> BaselineSignals(signal_set=["pair"]).fit(frame).transform(frame)
        array([[1., 0., 0., 0.]], dtype=float32)
        """
        check_is_fitted(self, "snapshots_")
        # (the configurations fit was given: set_params since takes effect at the next fit; a transformer pickled
        # before fit kept them reads the parameter, as it always did)
        fitted = self.tenants_ if hasattr(self, "tenants_") else self.tenants
        tenants = fitted
        if tenants is None:
            # The own domains fit used (inferred from all of its mail): a batch read with its own inferences would
            # give a message other values beside other mail than alone.
            tenants = [TenantConfig._derived(t, d) for t, d in self.own_domains_.items() if d] or None
        messages = self._messages(X, tenants)
        if fitted is None:  # fit's inferred own domains decide directions here, and stay inferred
            # On a copy sharing frame and edges: X may be the caller's Messages, whose configured own domains
            # must stay configured for every later use of it.
            messages = messages._with_inferred(getattr(self, "inferred_own_", frozenset()) & set(messages.own_domains))
        # The set fit chose, as get_feature_names_out names it: a signal_set changed since takes effect at the next
        # fit. (Transformers pickled before fit kept it: the parameter, as they always read it.)
        signals = self.signal_set_ if hasattr(self, "signal_set_") else self._signals()
        from ._batch import SignalBatch

        sb = SignalBatch.from_messages(messages)
        views = signals._views(sb.tenants, self.snapshots_, self.cold_start)
        out = stack(signals.compute_columns(sb, views, level="message"), signals.names)
        if isinstance(X, pd.DataFrame) and len(out) != len(X) \
                and _get_output_config("transform", self)["dense"] == "pandas":
            # One row per recipient in, one per message out: set_output would label the rows with the input's
            # index (and fail on its length); a frame carries each message's own label, its first row's.
            return pd.DataFrame(out, index=messages.frame.index, columns=signals.names)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The signal names, in column order.

        Examples
        --------
        >>> frame = pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "timestamp": ["2024-05-01T09:00Z"],
        ...                       "sender": ["a@t.com"], "recipients": ["b@t.com"], "direction": ["internal"]})
        >>> BaselineSignals(signal_set=["pair"]).fit(frame).get_feature_names_out()[:2]
        array(['pair_messages', 'pair_is_first_contact'], dtype=object)
        """
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # mail frames in the message contract, not a numeric matrix
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags
