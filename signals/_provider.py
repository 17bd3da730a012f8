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
           "IDENTIFIER_COLUMNS"]

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

    Examples
    --------
    >>> class SubjectLength(SignalProvider):
    ...     name = "subject_length"
    ...     level = "message"
    ...     signals = (SignalSpec("subject_chars", "int32", "Characters in the subject.", "count"),)
    ...     def compute(self, batch, view):
    ...         return {"subject_chars": batch.message_column("subject").str.len().fillna(0).to_numpy("int32")}
    >>> SubjectLength().names
    ['subject_chars']
    """

    name: ClassVar[str] = ""
    level: ClassVar[Literal["message", "edge"]] = "message"
    signals: ClassVar[tuple[SignalSpec, ...]] = ()
    #: Message columns (beyond the contract's) a provider reads; the batch keeps them.
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


def register_provider(cls: type[SignalProvider]) -> type[SignalProvider]:
    """Add a provider class to the registry under its ``name`` (usable as a decorator).

    Examples
    --------
    >>> @register_provider
    ... class Nothing(SignalProvider):
    ...     name = "nothing_example"
    >>> provider_registry()["nothing_example"] is Nothing
    True
    """
    if not (isinstance(cls, type) and issubclass(cls, SignalProvider)) or not cls.name:
        raise ConfigError(f"register_provider takes a SignalProvider subclass with a name. Got {cls!r} instead.")
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
    from . import _builtin_sender, _builtin_pair, _builtin_identity  # noqa: F401,I001  (registers, in column order)

    return dict(_REGISTRY)


#: Output columns every frame of signals starts with: no signal may take one of these names.
IDENTIFIER_COLUMNS: tuple[str, ...] = ("tenant_id", "message_id", "recipient")


def checked_output(provider: SignalProvider, values: Any, batch: Any) -> Mapping[str, np.ndarray]:
    """A provider's ``compute`` result, checked against what it declares: every column, one value per message
    (or edge, by its level), integers that fit the declared dtype.

    The built-in providers are trusted (their columns are tested); a user's provider that returns one value per
    recipient for a message-level signal, a single value, a NaN for an int32 column or no such column at all
    would otherwise be broadcast, cast or indexed into wrong values without an error.

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
    """
    if type(provider).__module__.startswith("commgraph.signals._builtin"):
        return values
    who = f"provider {provider.name!r} ({type(provider).__name__})"
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
        value = np.asarray(values[spec.name])
        if value.ndim != 1 or len(value) != size:
            unit = "message" if provider.level == "message" else "edge (message x recipient)"
            raise ConfigError(f"{who} returned column {spec.name!r} with shape {value.shape}; a "
                              f"{provider.level}-level provider returns one value per {unit}: {size} here")
        target = np.dtype(spec.dtype)
        if target.kind in "iu" and value.dtype.kind in "fiu" and len(value):
            if value.dtype.kind == "f" and not (np.isfinite(value) & (value == np.floor(value))).all():
                raise ConfigError(f"{who} returned NaN, infinite or fractional values for the {spec.dtype} column "
                                  f"{spec.name!r} (a cast would truncate them); return whole numbers, or declare a "
                                  "float dtype")
            low, high = np.iinfo(target).min, np.iinfo(target).max
            if value.min() < low or value.max() > high:
                raise ConfigError(f"{who} returned values from {value.min()} to {value.max()} for the {spec.dtype} "
                                  f"column {spec.name!r}, which holds {low} to {high}; declare a wider dtype")
        out[spec.name] = value
    return out
