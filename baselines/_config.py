"""The one configuration object of a baseline build: windows, decay, labels, privacy, limits."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from commgraph.graph import ConfigError
from commgraph.graph._errors import ParameterError
from commgraph.graph._timestamps import duration
from commgraph.graph._toml import read_toml

__all__ = ["BaselineConfig", "LABEL_POLICIES"]

#: How unlabelled mail counts in the smoothed likelihoods.
#: ``presume_safe``: a message without a known label counts as safe once it is
#: older than ``settle_delay`` (users and the SOC had that long to report it);
#: ``ignore``: only explicit labels count.
LABEL_POLICIES: tuple[str, ...] = ("presume_safe", "ignore")

_CALLER = "BaselineConfig"
_SHORT = re.compile(r"^(-?\d+)\s*([dhms])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def prior_pair(value: Any) -> tuple[float, float] | None:
    """A Beta prior as ``(alpha, beta)``, from a pair or a mapping with ``alpha`` and ``beta`` (the form of
    :attr:`Snapshot.priors <commgraph.baselines.Snapshot.priors>`, ``source`` allowed beside them); None unless
    both are finite numbers > 0.

    Examples
    --------
    >>> prior_pair([9, 1]), prior_pair({"alpha": 9.0, "beta": 1.0, "source": "pooled"})
    ((9.0, 1.0), (9.0, 1.0))
    >>> prior_pair((-1, 1)), prior_pair({"alpha": 1.0}), prior_pair([float("nan"), 1.0]), prior_pair("9,1")
    (None, None, None, None)
    """
    if isinstance(value, Mapping):
        if not {"alpha", "beta"} <= set(value) <= {"alpha", "beta", "source"}:
            return None
        value = (value["alpha"], value["beta"])
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray) or len(value) != 2:
        return None
    if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
               and math.isfinite(v) and v > 0 for v in value):
        return None
    return float(value[0]), float(value[1])


def _error(name: str, allowed: str, got: Any) -> ParameterError:
    return ParameterError(name, _CALLER, allowed, got)


def _is_number(value: Any) -> bool:
    """A real number, Python's or numpy's (a value read from pandas is numpy's), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _timedelta(name: str, value: Any) -> _dt.timedelta:
    """A positive timedelta from a timedelta, a pandas string ("7d", "36h") or seconds (a Python or numpy number:
    ``pd.Timedelta`` reads a bare numpy number as nanoseconds), in whole microseconds (what a timedelta holds).

    Examples
    --------
    >>> _timedelta("half_life", np.int64(86_400)), _timedelta("half_life", "36h")
    (datetime.timedelta(days=1), datetime.timedelta(days=1, seconds=43200))
    """
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        if _is_number(value):  # (to the microsecond: 0.1 s as a float is 0.1000000000000000055 s)
            td = pd.Timedelta(seconds=value.item() if isinstance(value, np.generic) else value).round("us")
        elif isinstance(value, str) and _SHORT.match(value.strip()):
            number, unit = _SHORT.match(value.strip()).groups()
            td = pd.Timedelta(**{_UNITS[unit]: int(number)})
        else:
            td = duration(value)
    except (TypeError, ValueError, OverflowError):
        raise _error(name, "a timedelta > 0 (a timedelta, a string such as '7d' or seconds)", value) from None
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise _error(name, "a timedelta > 0", value)
    try:
        td.value  # (times are int64 nanoseconds: a longer duration has no place in them)
    except OverflowError:
        raise _error(name, "a timedelta > 0 of at most 292 years (int64 nanoseconds)", value) from None
    if td.value % 1_000:  # (a timedelta cannot hold it: it would be another duration, silently)
        raise _error(name, "a timedelta > 0 in whole microseconds", value)
    return td.to_pytimedelta()


def _duration_text(td: _dt.timedelta) -> str:
    """A duration as configuration files write it (``'7d'``, ``'36h'``, ``'90s'``; a fraction of a second in
    pandas' text), which :func:`_timedelta` reads back to the same duration.

    Examples
    --------
    >>> _duration_text(_dt.timedelta(days=7)), _duration_text(_dt.timedelta(seconds=1.5))
    ('7d', '0 days 00:00:01.500000')
    """
    return _window_name(td) if not td % _dt.timedelta(seconds=1) else str(pd.Timedelta(td))


@dataclass(frozen=True)
class BaselineConfig:
    """How baselines are built: windows, decay, label policy, privacy and limits.

    Frozen and validated when created; :meth:`from_toml` and :meth:`from_dict`
    refuse unknown fields, and :meth:`evolve` makes validated variants.

    Parameters
    ----------
    windows : tuple of timedelta, default (7d, 30d, 90d)
        Look-back windows ``[as_of - window, as_of)``; distinct, each a whole
        number of hours. Window columns are named after them (``n_messages_7d``).
    half_life : timedelta, default 14d
        Half-life of the decayed message counts.
    label_policy : {"presume_safe", "ignore"}, default "presume_safe"
        How unlabelled mail counts in the likelihoods (see :data:`LABEL_POLICIES`).
        The default presumes mail safe when nobody reported it within
        ``settle_delay``, because reports cover a tiny share of mail and are
        biased towards attacks.
    settle_delay : timedelta, default 7d
        Age after which unlabelled mail is presumed safe; at most the longest window.
    privacy : bool, default False
        Keyed-hash keys with a per-tenant secret, and no raw address or display
        name in any table (see :func:`build_baselines`).
    top_display_names : int, default 3
        Display names kept per sender (the most used ones, with counts).
    known_contact_domains : int, default 200
        How many of the most corresponded-with other domains (mail either way)
        join the tenant's known-contact list for look-alike checks. The list
        always holds every own domain (one that sent internal or outbound
        mail) and every domain the tenant wrote to, however many: a look-alike
        of a correspondent is what an attacker registers. 0 keeps only those.
    min_prior_entities : int, default 30
        Entities with at least one counted outcome a tenant needs to fit its own
        prior; below this it borrows the global prior (cold start).
    min_prior_labels : int, default 20
        Explicit labels (any class) a tenant needs to fit its own prior.
    credible_level : float, default 0.95
        Level of the one-sided lower credible bound of the likelihoods.
    global_prior : tuple of (float, float), optional
        The Beta(alpha, beta) prior cold-start tenants borrow (finite, > 0; a
        mapping with ``alpha`` and ``beta`` is read as the pair). Empty: fitted on
        the pooled entities of every tenant in the build, or (1, 1) when too few.

    Examples
    --------
    >>> cfg = BaselineConfig(windows=("7d", "30d"), half_life="3d")
    >>> cfg.window_names, cfg.half_life
    (('7d', '30d'), datetime.timedelta(days=3))
    >>> BaselineConfig(half_life=-3)
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ParameterError: The 'half_life' parameter of BaselineConfig must be a timedelta > 0. Got -3 instead.
    >>> BaselineConfig(label_policy="safe")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ParameterError: The 'label_policy' parameter of BaselineConfig must be one of 'presume_safe', 'ignore'. Got 'safe' instead.
    """

    windows: tuple[_dt.timedelta, ...] = (_dt.timedelta(days=7), _dt.timedelta(days=30), _dt.timedelta(days=90))
    half_life: _dt.timedelta = _dt.timedelta(days=14)
    label_policy: Literal["presume_safe", "ignore"] = "presume_safe"
    settle_delay: _dt.timedelta = _dt.timedelta(days=7)
    privacy: bool = False
    top_display_names: int = 3
    known_contact_domains: int = 200
    min_prior_entities: int = 30
    min_prior_labels: int = 20
    credible_level: float = 0.95
    global_prior: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        # A frozen value object: validate (and normalise units) once, when made.
        windows = self.windows
        if isinstance(windows, (str, _dt.timedelta)) or not hasattr(windows, "__iter__"):
            raise _error("windows", "a non-empty list of timedeltas", windows)
        windows = tuple(_timedelta("windows", w) for w in windows)
        if not windows or len(set(windows)) != len(windows):
            raise _error("windows", "a non-empty list of distinct timedeltas", self.windows)
        if any(w % _dt.timedelta(hours=1) for w in windows):
            raise _error("windows", "a list of whole numbers of hours", self.windows)
        object.__setattr__(self, "windows", tuple(sorted(windows)))
        object.__setattr__(self, "half_life", _timedelta("half_life", self.half_life))
        if self.label_policy not in LABEL_POLICIES:
            raise _error("label_policy", "one of " + ", ".join(repr(p) for p in LABEL_POLICIES), self.label_policy)
        delay = _timedelta("settle_delay", self.settle_delay)
        if delay > max(windows):
            raise _error("settle_delay", f"a timedelta > 0 and <= the longest window ({_window_name(max(windows))})",
                         self.settle_delay)
        object.__setattr__(self, "settle_delay", delay)
        if not isinstance(self.privacy, bool):
            raise _error("privacy", "a bool", self.privacy)
        for name, low in (("top_display_names", 1), ("known_contact_domains", 0),
                          ("min_prior_entities", 1), ("min_prior_labels", 0)):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value != int(value) or value < low:
                raise _error(name, f"an int >= {low}", value)
            if value > 2**53:  # (a build counts in int64 and float64: beyond this, no count is exact)
                raise _error(name, f"an int in [{low}, 2 ** 53]", value)
            object.__setattr__(self, name, int(value))  # (numpy's read from pandas, or 3.0 from a file: an int)
        level = self.credible_level
        if not _is_number(level) or not 0.5 <= level < 1:
            raise _error("credible_level", "a float in [0.5, 1)", level)
        object.__setattr__(self, "credible_level", float(level))
        prior = self.global_prior
        if prior is not None:
            pair = prior_pair(prior)
            if pair is None:
                raise _error("global_prior", "a pair of finite numbers (alpha, beta) > 0, e.g. [9.0, 1.0] (in "
                                             "TOML also {alpha = 9.0, beta = 1.0}), or omitted", prior)
            object.__setattr__(self, "global_prior", pair)

    def __repr__(self) -> str:
        """Durations as the configuration file writes them (``'7d'``), which the constructor reads back.

        Examples
        --------
        >>> BaselineConfig(windows=("7d", "36h"), half_life="14d")  # doctest: +ELLIPSIS
        BaselineConfig(windows=('36h', '7d'), half_life='14d', label_policy='presume_safe', settle_delay='7d', ...)
        >>> eval(repr(BaselineConfig(settle_delay="90min"))) == BaselineConfig(settle_delay="90min")
        True
        """
        def shown(value: Any) -> Any:
            if isinstance(value, _dt.timedelta):
                return _duration_text(value)
            return tuple(shown(v) for v in value) if isinstance(value, tuple) else value

        fields = ", ".join(f"{f.name}={shown(getattr(self, f.name))!r}" for f in dataclasses.fields(self))
        return f"BaselineConfig({fields})"

    # ------------------------------------------------------------------ derived values
    @property
    def window_names(self) -> tuple[str, ...]:
        """Column suffixes of the windows: ``7d``, ``36h``."""
        return tuple(_window_name(w) for w in self.windows)

    @property
    def max_window(self) -> _dt.timedelta:
        """The longest window: how far back the event-time state reaches."""
        return max(self.windows)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BaselineConfig":
        """Build a configuration from a mapping (a TOML table); unknown fields are refused.

        Examples
        --------
        >>> BaselineConfig.from_dict({"half_life": "7d", "label_policy": "ignore"}).label_policy
        'ignore'
        >>> BaselineConfig.from_dict({"halflife": "7d"})
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.ConfigError: unknown field 'halflife' in BaselineConfig; allowed fields are 'windows', 'half_life', 'label_policy', 'settle_delay', 'privacy', 'top_display_names', 'known_contact_domains', 'min_prior_entities', 'min_prior_labels', 'credible_level', 'global_prior'
        """
        _check_fields(data)
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | PathLike) -> "BaselineConfig":
        """Load a configuration from a TOML file (top level, or a ``[baselines]`` table beside other tools' tables);
        an error names the file and the field, as its writer wrote them.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "baselines.toml"
        >>> _ = p.write_text('[baselines]\\nwindows = ["1d", "7d"]\\nhalf_life = "2d"\\n')
        >>> BaselineConfig.from_toml(p).window_names
        ('1d', '7d')
        >>> _ = p.write_text('half_life = "-2d"\\n')
        >>> BaselineConfig.from_toml(p)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.ConfigError: the baseline configuration file '...baselines.toml': its 'half_life' must be a timedelta > 0; it holds '-2d'
        >>> _ = p.write_text('windows = ["1d", "3d"]\\n')
        >>> BaselineConfig.from_toml(p)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.ConfigError: ...: its 'settle_delay' must be a timedelta > 0 and <= the longest window (3d); left out, it is the default '7d'
        """
        data = read_toml(path, "the baseline configuration")
        if isinstance(data.get("baselines"), Mapping):
            # A file shared with other settings keeps ours in [baselines] (its other tables are theirs); fields
            # beside that table, outside any, would be ignored silently: refused.
            loose = [k for k, v in data.items() if k != "baselines" and not isinstance(v, Mapping)]
            if loose:
                raise ConfigError(f"the baseline configuration file {str(path)!r} has a [baselines] table and "
                                  f"fields outside it ({', '.join(map(repr, loose))}); put every field in one place")
            data = data["baselines"]
        try:
            return cls.from_dict(data)
        except ConfigError as exc:  # (a field of the file, not a parameter of a call)
            said = str(exc)
            if isinstance(exc, ParameterError):
                # A field the file leaves out is its default, which another field it sets can contradict.
                got = _duration_text(exc.got) if isinstance(exc.got, _dt.timedelta) else exc.got
                held = f"it holds {got!r}" if exc.parameter in data else f"left out, it is the default {got!r}"
                said = f"its {exc.parameter!r} must be {exc.allowed}; {held}"
            raise ConfigError(f"the baseline configuration file {str(path)!r}: {said}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (durations as strings) for manifests and TOML; round-trips through :meth:`from_dict`.

        Examples
        --------
        >>> d = BaselineConfig().to_dict()
        >>> d["windows"], d["half_life"]
        (['7d', '30d', '90d'], '14d')
        >>> BaselineConfig.from_dict(d) == BaselineConfig()
        True
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "windows":
                value = list(self.window_names)
            elif isinstance(value, _dt.timedelta):
                value = _duration_text(value)  # (a fraction of a second kept: the manifest must read back the same)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def evolve(self, **changes: Any) -> "BaselineConfig":
        """A validated copy with some fields changed.

        Examples
        --------
        >>> BaselineConfig().evolve(privacy=True).privacy
        True
        >>> BaselineConfig().evolve(halflife="7d")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.ConfigError: unknown field 'halflife' in BaselineConfig; allowed fields are ...
        """
        _check_fields(changes)
        return dataclasses.replace(self, **changes)


def _check_fields(data: Mapping[str, Any]) -> None:
    """Refuse a field :class:`BaselineConfig` does not have, naming the ones it has."""
    names = [f.name for f in dataclasses.fields(BaselineConfig)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r} in {_CALLER}; allowed fields are "
                          + ", ".join(repr(n) for n in names))


def duration_ns(td: _dt.timedelta) -> int:
    """A configured duration in nanoseconds, exactly (``total_seconds()`` is a float: 1.001 s became
    1,000,999,999 ns, one build and backfill then reading the same setting 1 ns apart).

    Examples
    --------
    >>> duration_ns(_dt.timedelta(seconds=1, milliseconds=1)), duration_ns(_dt.timedelta(days=7))
    (1001000000, 604800000000000)
    """
    return (td.days * 86_400 + td.seconds) * 10**9 + td.microseconds * 1_000


def _window_name(td: _dt.timedelta) -> str:
    seconds = int(td.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds}s"
