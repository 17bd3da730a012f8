"""The signal provider contract: declared columns, vectorised computation, a registry of providers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

import numpy as np

from commgraph.graph import ConfigError

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    from ._batch import SignalBatch
    from ._view import SnapshotView

__all__ = ["SignalSpec", "SignalProvider", "AGGREGATIONS", "register_provider", "provider_registry", "checked_output",
           "checked_one", "shipped_providers", "is_shipped", "IDENTIFIER_COLUMNS"]

#: How a recipient-level column becomes one value per message.
AGGREGATIONS: tuple[str, ...] = ("min", "max", "any", "mean")
_DTYPES = ("int8", "int32", "float32")


@dataclass(frozen=True)
class SignalSpec:
    """One signal column: name, dtype, meaning, unit, aggregation and default.

    Parameters
    ----------
    name : str
        Column name (stable API, snake_case, unit in the name where there is one).
    dtype : {"int8", "int32", "float32"}
        Edge-level dtype. Flags are ``int8`` 0/1.
    description : str
        One line saying what the value means.
    unit : str
        ``count``, ``days``, ``flag``, ``probability``, ``bits``, ``edits`` or ``rate``.
    aggregate : {"min", "max", "any", "mean"}
        How recipients' values become the message's value (``level="message"``).
    default : float or None
        The value for a never-seen entity (``nan`` only where documented, e.g.
        "days since" something that never happened); None for likelihoods, which
        take the tenant's prior instead (their description says so).
    suspicious : {"high", "low"} or None
        Which way the value points when a message is suspicious (``"low"`` for
        ``sender_active_days``: few active days is the rare, risky case), used
        by :func:`evaluate` and :func:`directed_anomaly_score`; None when
        neither direction is suspicious by itself.

    Examples
    --------
    >>> spec = SignalSpec("pair_messages", "int32", "Messages from this sender to this recipient.", "count", "min")
    >>> spec.message_dtype
    'int32'
    >>> SignalSpec("x", "int16", "", "count", "min")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: The 'dtype' of signal 'x' must be one of 'int8', 'int32', 'float32'. Got 'int16' instead.
    """

    name: str
    dtype: str
    description: str
    unit: str
    aggregate: str = "max"
    default: float | None = 0.0
    suspicious: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ConfigError(f"The 'dtype' of signal {self.name!r} must be one of "
                              + ", ".join(repr(d) for d in _DTYPES) + f". Got {self.dtype!r} instead.")
        if self.aggregate not in AGGREGATIONS:
            raise ConfigError(f"The 'aggregate' of signal {self.name!r} must be one of "
                              + ", ".join(repr(a) for a in AGGREGATIONS) + f". Got {self.aggregate!r} instead.")
        if self.suspicious not in (None, "high", "low"):
            raise ConfigError(f"The 'suspicious' direction of signal {self.name!r} must be 'high', 'low' or None. "
                              f"Got {self.suspicious!r} instead.")
        if self.default is not None and math.isnan(self.default) and self.dtype != "float32":
            raise ConfigError(f"signal {self.name!r}: only float32 columns may default to nan")

    @property
    def message_dtype(self) -> str:
        """The dtype at message level (a mean of integers is a float)."""
        return "float32" if self.aggregate == "mean" else self.dtype


class SignalProvider:
    """A family of signals, computed for a batch against one tenant's snapshot, vectorised.

    Subclass it to add signals: declare ``name``, ``level`` and ``signals``,
    and implement :meth:`compute` with numpy operations over the whole batch
    (no per-row Python). Message-level providers (sender, domain, identity)
    return one value per message; edge-level ones (pair, recipient) one per
    (message, recipient). :meth:`compute_one` is the scalar path used by
    :meth:`Scorer.score_one`; providers without one cannot be scored one
    message at a time.

    Attributes
    ----------
    name : str
        Registry name of the provider.
    level : {"message", "edge"}
        Whether :meth:`compute` returns arrays per message or per edge.
    signals : tuple of SignalSpec
        The columns, in output order.

    A provider that reads other message columns (``subject``, or a column of
    your own) declares them in ``message_columns``: the batch path reads them
    with ``batch.message_column(name)``, the scalar path from
    ``message.columns`` (their values as the message gives them).

    Examples
    --------
    >>> class SubjectLength(SignalProvider):
    ...     name = "subject_length"
    ...     level = "message"
    ...     message_columns = ("subject",)
    ...     signals = (SignalSpec("subject_chars", "int32", "Characters in the subject.", "count"),)
    ...     def compute(self, batch, view):
    ...         return {"subject_chars": batch.message_column("subject").str.len().fillna(0).to_numpy("int32")}
    ...     def compute_one(self, message, view):
    ...         subject = message.columns["subject"]
    ...         return {"subject_chars": len(subject) if isinstance(subject, str) else 0}
    >>> SubjectLength().names
    ['subject_chars']
    >>> from commgraph.baselines._snapshot import _example
    >>> from commgraph.signals import Scorer, SignalSet
    >>> scorer = Scorer({"acme": _example()}, signal_set=SignalSet([SubjectLength()]))
    >>> message = {"tenant_id": "acme", "message_id": "9", "timestamp": "2024-05-04T10:00Z",
    ...            "sender": "ann@vendor.com", "recipients": "cy@acme.com", "subject": "Invoice overdue"}
    >>> scorer.score_one(message)["subject_chars"], scorer.score(pd.DataFrame([message]))["subject_chars"].tolist()
    (15, [15])
    """

    name: ClassVar[str] = ""
    level: ClassVar[Literal["message", "edge"]] = "message"
    signals: ClassVar[tuple[SignalSpec, ...]] = ()
    #: Message columns a provider reads (``subject``, a column of your own): the batch keeps them, and
    #: :meth:`Scorer.score_one` gives their values to :meth:`compute_one` in ``message.columns``.
    message_columns: ClassVar[tuple[str, ...]] = ()

    @property
    def names(self) -> list[str]:
        """Column names, in order."""
        return [s.name for s in self.signals]

    def compute(self, batch: "SignalBatch", view: "SnapshotView") -> Mapping[str, np.ndarray]:
        """Every column of this provider for ``batch`` (one tenant) against ``view``.

        Examples
        --------
        >>> SignalProvider().compute(None, None)
        Traceback (most recent call last):
        ...
        NotImplementedError: SignalProvider.compute must be implemented by SignalProvider
        """
        raise NotImplementedError(f"SignalProvider.compute must be implemented by {type(self).__name__}")

    def compute_one(self, message: Any, view: "SnapshotView") -> Mapping[str, Any]:
        """Scalar path for one message: per column, a Python value (edge-level: a list per recipient).

        ``message`` is the message as :meth:`Scorer.score_one` parsed it
        (:class:`OneMessage`: normalised addresses and their keys, the
        timestamp in ns, ...), with ``message.columns`` holding the values of
        the columns declared in ``message_columns``. The result is held to
        what the provider declares, as :meth:`compute`'s is
        (:func:`checked_one`).

        Examples
        --------
        >>> SignalProvider().compute_one(None, None)
        Traceback (most recent call last):
        ...
        NotImplementedError: SignalProvider has no scalar path (compute_one); score it in batches with Scorer.score
        """
        raise NotImplementedError(f"{type(self).__name__} has no scalar path (compute_one); score it in batches "
                                  "with Scorer.score")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.signals)} signals, level={self.level!r})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self))


def builtin_compute_one(provider: SignalProvider, message: Any, view: "SnapshotView") -> Mapping[str, Any]:
    """``compute_one`` of the built-in providers: their columns from the one-pass path of every built-in.

    Each built-in signal's scalar logic is written once, in
    :meth:`BuiltinOne.values`; a subclass that declares other columns must
    implement its own ``compute_one``.
    """
    from ._builtin_one import BUILTIN_NAMES

    names = provider.names
    unknown = [n for n in names if n not in BUILTIN_NAMES]
    if unknown:
        raise NotImplementedError(f"{type(provider).__name__} declares signals the built-in scalar path does not "
                                  f"compute ({unknown[:5]}); implement its compute_one")
    one = view.builtin_one()
    if provider.level == "message":
        values = one.values(message, names)
        return {n: values[n] for n in names}
    # A mean of integers is a float per message but an integer per recipient.
    return one.per_recipient(message, names, as_int=[s.name for s in provider.signals
                                                     if s.aggregate == "mean" and s.dtype != "float32"])


_REGISTRY: dict[str, type[SignalProvider]] = {}
# The classes commgraph ships, by name: trusted (their columns are tested) and read by the scalar path's one pass.
# Filled as their modules register them; a name here is theirs alone.
_SHIPPED: dict[str, type[SignalProvider]] = {}
_SHIPPED_MODULE = "commgraph.signals._builtin_"


def _with_builtins(registered: dict[str, type[SignalProvider]]) -> dict[str, type[SignalProvider]]:
    """A copy of ``registered`` once the built-in providers' modules have registered them (in column order)."""
    from . import _builtin_sender, _builtin_pair, _builtin_identity  # noqa: F401,I001  (registers, in column order)

    return dict(registered)


def shipped_providers() -> dict[str, type[SignalProvider]]:
    """The provider classes shipped with commgraph, by name (whatever else is registered).

    Examples
    --------
    >>> list(shipped_providers())[:3]
    ['sender', 'sender_domain', 'pair']
    """
    return _with_builtins(_SHIPPED)


def is_shipped(provider: SignalProvider) -> bool:
    """Whether a provider is an instance of a shipped class itself (a subclass of one is the user's)."""
    return _SHIPPED.get(provider.name) is type(provider)


def register_provider(cls: type[SignalProvider]) -> type[SignalProvider]:
    """Add a provider class to the registry under its ``name`` (usable as a decorator).

    A class redefined under the same name (a notebook cell run again) replaces
    the earlier one; a shipped provider's name (:data:`DEFAULT_PROVIDERS`) is
    refused to any other class, a subclass of it included: every default
    :class:`SignalSet` would silently run that class instead.

    Examples
    --------
    >>> @register_provider
    ... class Nothing(SignalProvider):
    ...     name = "nothing_example"
    >>> provider_registry()["nothing_example"] is Nothing
    True
    >>> from commgraph.signals import SenderSignals
    >>> @register_provider
    ... class SenderSignals(SenderSignals):
    ...     pass
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: cannot register SenderSignals as provider 'sender': ...
    """
    if not (isinstance(cls, type) and issubclass(cls, SignalProvider)) or not cls.name:
        raise ConfigError(f"register_provider takes a SignalProvider subclass with a name. Got {cls!r} instead.")
    if cls.__module__.startswith(_SHIPPED_MODULE):
        _SHIPPED[cls.name] = cls
    else:
        # (the shipped classes registered first, so that their names are known whatever was imported)
        shipped = shipped_providers().get(cls.name)
        if shipped is not None:
            raise ConfigError(f"cannot register {cls.__qualname__} as provider {cls.name!r}: that name belongs "
                              f"to the built-in {shipped.__qualname__}, which every default SignalSet runs. Give "
                              f"your class a name of its own (name = \"my_{cls.name}\"), register it under that, and "
                              f"pass it to SignalSet in place of {cls.name!r}")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ConfigError(f"a provider named {cls.name!r} is already registered ({existing.__qualname__})")
    _REGISTRY[cls.name] = cls
    return cls


def provider_registry() -> dict[str, type[SignalProvider]]:
    """Registered provider classes by name (the built-ins first).

    Examples
    --------
    >>> list(provider_registry())[:3]
    ['sender', 'sender_domain', 'pair']
    """
    return _with_builtins(_REGISTRY)


#: Output columns every frame of signals starts with: no signal may take one of these names.
IDENTIFIER_COLUMNS: tuple[str, ...] = ("tenant_id", "message_id", "recipient")


def _who(provider: SignalProvider) -> str:
    return f"provider {provider.name!r} ({type(provider).__name__})"


# What a cast to a signal's dtype reads as a number (a bool is an int).
_REAL = (int, float, np.integer, np.floating, np.bool_)


def _numbers(who: str, spec: SignalSpec, value: np.ndarray) -> np.ndarray:
    """``value`` as a numeric array, or a :class:`ConfigError` naming what in it is no number.

    The cast to the declared dtype would otherwise fail without naming the provider or the column (None, pandas'
    NA, an integer beyond int64 in an object array), or silently give other numbers (datetimes, as their
    nanoseconds wrapped around; numeric text, parsed).
    """
    if value.dtype.kind in "biuf":
        return value
    if value.dtype.kind != "O":
        raise ConfigError(f"{who} returned {value.dtype} values for the {spec.dtype} column {spec.name!r}, which are "
                          "not numbers (a cast would turn them into other numbers, or fail); return numbers (a time "
                          "as seconds or days, a flag as 0/1)")
    items = value.tolist()
    bad = [v for v in items if not isinstance(v, _REAL)]
    if bad:
        raise ConfigError(f"{who} returned {bad[0]!r:.40} ({type(bad[0]).__name__}) for the {spec.dtype} column "
                          f"{spec.name!r}, which is not a number; return numbers (NaN for a missing value, in a float "
                          "column)")
    if all(isinstance(v, (int, np.integer)) for v in items):
        target = np.dtype(spec.dtype)
        if target.kind in "iu" and items:  # (checked as Python integers: int64 need not hold them)
            _check_range(who, spec, min(items), max(items))
        return np.array(items, dtype=np.int64 if target.kind in "iu" else np.float64)
    return np.array(items, dtype=np.float64)


def _check_range(who: str, spec: SignalSpec, smallest: Any, largest: Any) -> None:
    info = np.iinfo(np.dtype(spec.dtype))
    if smallest < info.min or largest > info.max:
        raise ConfigError(f"{who} returned values from {smallest} to {largest} for the {spec.dtype} column "
                          f"{spec.name!r}, which holds {info.min} to {info.max}; declare a wider dtype")


def _checked_values(who: str, spec: SignalSpec, value: np.ndarray) -> np.ndarray:
    """One column's values, numbers the declared dtype holds (integers whole and in range)."""
    value = _numbers(who, spec, value)
    target = np.dtype(spec.dtype)
    if target.kind in "iu" and value.dtype.kind in "fiu" and len(value):
        if value.dtype.kind == "f" and not (np.isfinite(value) & (value == np.floor(value))).all():
            raise ConfigError(f"{who} returned NaN, infinite or fractional values for the {spec.dtype} column "
                              f"{spec.name!r} (a cast would truncate them); return whole numbers, or declare a "
                              "float dtype")
        _check_range(who, spec, value.min(), value.max())
    return value


def _as_array(who: str, spec: SignalSpec, column: Any) -> np.ndarray:
    try:
        return np.asarray(column)
    except (TypeError, ValueError) as exc:  # a ragged list, say
        raise ConfigError(f"{who} returned column {spec.name!r} that is no array of numbers ({exc}); return one "
                          "number per value") from None


def checked_output(provider: SignalProvider, values: Any, batch: Any) -> Mapping[str, np.ndarray]:
    """A provider's ``compute`` result, checked against what it declares: every column, one value per message
    (or edge, by its level), numbers that the declared dtype holds.

    The built-in providers are trusted (their columns are tested); a user's provider that returns one value per
    recipient for a message-level signal, a single value, a NaN for an int32 column, a value that is no number
    (None, NA, a datetime) or no such column at all would otherwise be broadcast, cast or indexed into wrong values,
    or fail in the cast, without an error naming it.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> class Flag(SignalProvider):
    ...     name, level = "flag", "message"
    ...     signals = (SignalSpec("flag", "int8", "1 always.", "flag"),)
    ...     def compute(self, batch, view):
    ...         return {"flag": np.ones(batch.n_messages, np.int8)}
    >>> batch = SimpleNamespace(n_messages=3, n_edges=5)  # (what is read of a SignalBatch)
    >>> checked_output(Flag(), Flag().compute(batch, None), batch)["flag"].tolist()
    [1, 1, 1]
    >>> try:
    ...     checked_output(Flag(), {"flag": np.ones(5, np.int8)}, batch)
    ... except ConfigError as exc:
    ...     print(str(exc).split("; ")[1])
    a message-level provider returns one value per message: 3 here
    >>> try:
    ...     checked_output(Flag(), {"flag": np.array([1, None, 0], dtype=object)}, batch)
    ... except ConfigError as exc:
    ...     print(str(exc).split("; ")[0])
    provider 'flag' (Flag) returned None (NoneType) for the int8 column 'flag', which is not a number
    """
    if is_shipped(provider):
        return values
    who = _who(provider)
    if not isinstance(values, Mapping):
        raise ConfigError(f"{who}.compute must return a mapping of column name to array; got "
                          f"{type(values).__name__}")
    missing = [s.name for s in provider.signals if s.name not in values]
    if missing:
        raise ConfigError(f"{who} declares {missing} but its compute returned no such column (it returned "
                          f"{sorted(map(str, values))[:10]})")
    size = batch.n_messages if provider.level == "message" else batch.n_edges
    out = {}
    for spec in provider.signals:
        value = _as_array(who, spec, values[spec.name])
        if value.ndim != 1 or len(value) != size:
            unit = "message" if provider.level == "message" else "edge (message x recipient)"
            raise ConfigError(f"{who} returned column {spec.name!r} with shape {value.shape}; "
                              f"{'a' if provider.level == 'message' else 'an'} {provider.level}-level provider "
                              f"returns one value per {unit}: {size} here")
        out[spec.name] = _checked_values(who, spec, value)
    return out


def checked_one(provider: SignalProvider, values: Any, n_recipients: int) -> dict[str, Any]:
    """A provider's ``compute_one`` result, checked as :func:`checked_output` checks ``compute``'s, as Python values.

    Every declared column (others are dropped, as the batch path drops them), a single value from a message-level
    provider and a list of one per recipient from an edge-level one, numbers the declared dtype holds; integer
    columns come back as ``int``, float ones as ``float`` (numpy scalars included: the caller aggregates and
    rounds them as Python numbers). Plain ``int`` and ``float`` values (the common case) pass without numpy.

    Examples
    --------
    >>> class Reach(SignalProvider):
    ...     name, level = "reach", "edge"
    ...     signals = (SignalSpec("reach", "int32", "A count per recipient.", "count"),)
    >>> checked_one(Reach(), {"reach": [np.int32(2), 3.0], "other": 1}, 2)
    {'reach': [2, 3]}
    >>> try:
    ...     checked_one(Reach(), {"reach": [2]}, 2)
    ... except ConfigError as exc:
    ...     print(str(exc).split("; ")[1])
    an edge-level provider returns one value per edge (message x recipient): a list of 2 here, one per recipient
    """
    who = _who(provider)
    if not isinstance(values, Mapping):
        raise ConfigError(f"{who}.compute_one must return a mapping of column name to value (edge-level: a list "
                          f"per recipient); got {type(values).__name__}")
    missing = [s.name for s in provider.signals if s.name not in values]
    if missing:
        raise ConfigError(f"{who} declares {missing} but its compute_one returned no such column (it returned "
                          f"{sorted(map(str, values))[:10]})")
    edge = provider.level == "edge"
    out = {}
    for spec in provider.signals:
        value = values[spec.name]
        integer = spec.dtype != "float32"
        if edge:
            if type(value) is list and len(value) == n_recipients and (
                    all(type(v) is int for v in value) if integer else all(type(v) in (float, int) for v in value)):
                if integer:
                    _check_range(who, spec, min(value), max(value))
                out[spec.name] = value
                continue
        elif type(value) is int or (type(value) is float and not integer):
            if integer:
                _check_range(who, spec, value, value)
            out[spec.name] = value
            continue
        array = _as_array(who, spec, value)
        if array.shape != ((n_recipients,) if edge else ()):
            raise ConfigError(f"{who}.compute_one returned column {spec.name!r} with shape {array.shape}; " + (
                f"an edge-level provider returns one value per edge (message x recipient): a list of {n_recipients} "
                "here, one per recipient" if edge else "a message-level provider returns one value per message: a "
                "single value here"))
        array = _checked_values(who, spec, array.reshape(-1))
        array = array.astype(spec.dtype if integer else np.float64)
        out[spec.name] = array.tolist() if edge else array.tolist()[0]
    return out
