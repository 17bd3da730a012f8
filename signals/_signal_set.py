"""A set of signal providers run together over a batch of any number of tenants."""

from __future__ import annotations

from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.internals import create_dataframe_from_blocks

from commgraph.baselines import Snapshot
from commgraph.graph import CommGraphError, ConfigError, Messages
from commgraph.graph._errors import ParameterError

from ._batch import SignalBatch
from ._batch import _column as column_array
from ._provider import IDENTIFIER_COLUMNS, SignalProvider, SignalSpec, checked_output, provider_registry
from ._privacy import batch_keys
from ._view import SnapshotView

__all__ = ["SignalSet", "DEFAULT_PROVIDERS", "LEVELS"]

#: The built-in providers of the default set, in column order.
DEFAULT_PROVIDERS: tuple[str, ...] = ("sender", "sender_domain", "pair", "recipient", "identity", "lookalike",
                                      "habits")
#: Output granularity: one row per (message, recipient), or per message.
LEVELS: tuple[str, ...] = ("edge", "message")

# Views of recently used snapshots (a view's derived structures cost a pass over the tables).
# Snapshots cannot be weakly referenced, so the cache is small and holds them until evicted.
_VIEW_CACHE: dict[int, tuple[Snapshot, SnapshotView]] = {}
_VIEW_CACHE_LIMIT = 32


def view_of(snapshot: Snapshot | SnapshotView) -> SnapshotView:
    """The prepared view of a snapshot, made once per snapshot object."""
    if isinstance(snapshot, SnapshotView):
        return snapshot
    if not isinstance(snapshot, Snapshot):
        raise ConfigError(f"snapshots must be Snapshot objects (from build_baselines or SnapshotStore.load). "
                          f"Got {type(snapshot).__name__} instead.")
    found = _VIEW_CACHE.get(id(snapshot))
    if found is not None and found[0] is snapshot:
        return found[1]
    if len(_VIEW_CACHE) >= _VIEW_CACHE_LIMIT:
        _VIEW_CACHE.pop(next(iter(_VIEW_CACHE)))
    view = SnapshotView(snapshot)
    _VIEW_CACHE[id(snapshot)] = (snapshot, view)
    return view


def global_priors(views: Iterable[SnapshotView]) -> dict[str, Any] | None:
    """The global priors a cold-start tenant borrows from the snapshots served, whatever their order.

    Snapshots built together carry the same global priors: those. Snapshots built
    apart (the refresh job builds each tenant on its own, its global priors pooled
    over its own mail) carry different ones: per entity kind, the Beta prior whose
    mean and strength (``alpha + beta``) are the medians of theirs, so that no
    tenant's prior is borrowed for being first, and one unusual tenant does not move it.

    Examples
    --------
    >>> from commgraph.baselines._snapshot import _example
    >>> from commgraph.signals._view import SnapshotView
    >>> a, b, c = _example(), _example(), _example()
    >>> for snap, (alpha, beta) in zip((a, b, c), [(1.0, 1.0), (9.0, 1.0), (2.0, 2.0)]):
    ...     snap.priors = {**snap.priors, "global": {k: {"alpha": alpha, "beta": beta, "source": "pooled"}
    ...                                              for k in snap.priors["global"]}}
    >>> prior = global_priors(SnapshotView(s) for s in (a, b, c))["sender"]
    >>> prior["alpha"], prior["beta"], prior["source"]
    (2.0, 2.0, 'median of 3 tenants')
    >>> global_priors(SnapshotView(s) for s in (c, a, b)) == global_priors(SnapshotView(s) for s in (a, b, c))
    True
    """
    carried = sorted(((view.snapshot.tenant_id, view.snapshot.priors["global"]) for view in views
                      if view.snapshot is not None and "global" in view.snapshot.priors), key=lambda tp: tp[0])
    if not carried:
        return None
    first = carried[0][1]
    if all(priors == first for _, priors in carried[1:]):
        return first
    out: dict[str, Any] = {}
    for kind in first:
        ab = np.array([[priors[kind]["alpha"], priors[kind]["beta"]] for _, priors in carried], dtype=np.float64)
        strength = ab.sum(axis=1)
        mean, size = float(np.median(ab[:, 0] / strength)), float(np.median(strength))
        out[kind] = {"alpha": mean * size, "beta": (1.0 - mean) * size, "source": f"median of {len(carried)} tenants"}
    return out


def _aggregate(values: np.ndarray, edge_message: np.ndarray, n_messages: int, how: str,
               default: float) -> np.ndarray:
    """One value per message from its edges' values (vectorised with ``reduceat``)."""
    if np.all(edge_message[1:] >= edge_message[:-1]):
        order_msg, ordered = edge_message, values
    else:
        order = np.argsort(edge_message, kind="stable")
        order_msg, ordered = edge_message[order], values[order]
    counts = np.bincount(order_msg, minlength=n_messages)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    floating = np.issubdtype(values.dtype, np.floating)
    out = np.full(n_messages, default, dtype=np.float64 if how == "mean" or floating else values.dtype)
    if not has.any():
        return out
    s = starts[has]
    if how == "mean":
        out[has] = np.add.reduceat(ordered.astype(np.float64), s) / counts[has]
    elif how == "min":
        out[has] = (np.fmin if floating else np.minimum).reduceat(ordered, s)
    else:  # max, any: nan-ignoring for floats (a first contact's nan does not hide a known gap)
        out[has] = (np.fmax if floating else np.maximum).reduceat(ordered, s)
    return out


def to_level(values: np.ndarray, provider_level: str, spec: SignalSpec, batch: SignalBatch, level: str,
             dtype: str) -> np.ndarray:
    """One provider column at the output level: message values broadcast to edges, or edge values
    aggregated per message by the signal's rule; then the output dtype."""
    if provider_level == "message" and level == "edge":
        values = values[batch.edge_message]
    elif provider_level == "edge" and level == "message":
        default = np.nan if spec.default is None else spec.default
        values = _aggregate(values, batch.edge_message, batch.n_messages, spec.aggregate, default)
    return values.astype(dtype, copy=False)


class SignalSet:
    """Several signal providers computed together: the columns a detector consumes.

    Parameters
    ----------
    providers : sequence of SignalProvider or str, optional
        Provider instances or registered names (:func:`provider_registry`),
        a list even of one (a single name or provider is refused); default:
        the built-ins (:data:`DEFAULT_PROVIDERS`).

    Examples
    --------
    >>> from commgraph.baselines import build_baselines
    >>> from commgraph.graph import validate
    >>> tenants = [{"tenant_id": "acme", "own_domains": ["acme.com"]}]
    >>> history = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z"], "sender": "ann@vendor.com",
    ...     "recipients": "cy@acme.com"}), tenants=tenants)
    >>> snapshots = build_baselines(history, as_of="2024-05-03")
    >>> batch = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["3", "4"],
    ...     "timestamp": "2024-05-03T10:00Z", "sender": ["ann@vendor.com", "eve@rnicrosoft.com"],
    ...     "recipients": ["cy@acme.com; di@acme.com", "cy@acme.com"]}), tenants=tenants)
    >>> s = SignalSet(["sender", "pair"])  # a list, even of one name: SignalSet(["pair"])
    >>> s.compute(batch, snapshots)[["message_id", "recipient", "sender_messages_7d", "pair_is_first_contact"]]
      message_id    recipient  sender_messages_7d  pair_is_first_contact
    0          3  cy@acme.com                   2                      0
    1          3  di@acme.com                   2                      1
    2          4  cy@acme.com                   0                      1
    >>> s.compute(batch, snapshots, level="message")[["message_id", "pair_is_first_contact"]]
      message_id  pair_is_first_contact
    0          3                      1
    1          4                      1
    """

    def __init__(self, providers: Sequence[SignalProvider | str] | None = None):
        if isinstance(providers, (str, SignalProvider)):  # a name was read letter by letter ("Got 's' instead")
            shown = repr(providers) if isinstance(providers, str) else "provider"
            raise ParameterError("providers", "SignalSet", "a list of SignalProvider instances or registered names",
                                 providers, fix=f"Pass a list, even of one: SignalSet([{shown}]).")
        registry = provider_registry()
        chosen = []
        for p in DEFAULT_PROVIDERS if providers is None else providers:
            if isinstance(p, str):
                if p not in registry:
                    raise ConfigError(f"The 'providers' parameter of SignalSet must name registered providers "
                                      f"({', '.join(map(repr, registry))}). Got {p!r} instead.")
                p = registry[p]()
            elif not isinstance(p, SignalProvider):
                raise ConfigError(f"The 'providers' parameter of SignalSet must hold SignalProvider instances or "
                                  f"names. Got {p!r} instead.")
            if p.level not in LEVELS:
                raise ConfigError(f"provider {p.name!r} ({type(p).__name__}) has level {p.level!r}; a provider's "
                                  f"level is one of {', '.join(map(repr, LEVELS))}")
            chosen.append(p)
        names = [s.name for p in chosen for s in p.signals]
        taken = sorted(set(names) & set(IDENTIFIER_COLUMNS))
        if taken:
            raise ConfigError(f"signal names {taken} are the names of the identifier columns every frame of signals "
                              f"starts with ({', '.join(IDENTIFIER_COLUMNS)}); name the signals otherwise")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError(f"signal names must be unique within a SignalSet; repeated: {duplicated[:5]}")
        self.providers: tuple[SignalProvider, ...] = tuple(chosen)

    # ------------------------------------------------------------------ description
    @property
    def specs(self) -> list[SignalSpec]:
        """Every column's :class:`SignalSpec`, in output order."""
        return [s for p in self.providers for s in p.signals]

    @property
    def names(self) -> list[str]:
        """Column names, in output order (stable API)."""
        return [s.name for s in self.specs]

    def describe(self) -> pd.DataFrame:
        """One row per signal: name, provider, dtype, unit, aggregation, default, suspicious direction, meaning.

        Examples
        --------
        >>> SignalSet(["pair"]).describe()[["signal", "dtype", "aggregate"]]
                           signal    dtype aggregate
        0           pair_messages    int32       min
        1   pair_is_first_contact     int8       any
        2    pair_days_since_last  float32       max
        3  pair_recipient_replied     int8       any
        """
        return pd.DataFrame([{"signal": s.name, "provider": p.name, "level": p.level, "dtype": s.dtype,
                              "unit": s.unit, "aggregate": s.aggregate,
                              "default": "prior" if s.default is None else s.default, "suspicious": s.suspicious,
                              "description": s.description}
                             for p in self.providers for s in p.signals])

    # ------------------------------------------------------------------ computing
    def _views(self, tenants: list[str], snapshots: Mapping[str, Snapshot | SnapshotView],
               cold_start: bool) -> dict[str, SnapshotView]:
        views = {}
        missing = [t for t in tenants if t not in snapshots]
        if missing and not cold_start:
            raise CommGraphError(f"no snapshot for tenant {missing[0]!r}" + (f" (and {len(missing) - 1} more: "
                                 f"{missing[1:6]})" if len(missing) > 1 else "") + f"; snapshots are loaded for "
                                 f"{sorted(snapshots)[:5]}. Build or publish its baselines, or pass cold_start=True "
                                 "to score it with the global prior")
        for t in tenants:
            if t in snapshots:
                view = view_of(snapshots[t])
                if view.tenant_id != t:
                    raise CommGraphError(f"the snapshot given for tenant {t!r} belongs to tenant {view.tenant_id!r}")
                views[t] = view
        if missing:
            priors = global_priors(view_of(s) for s in snapshots.values())
            for t in missing:
                views[t] = SnapshotView(None, tenant_id=t, global_priors=priors)
        return views

    def compute_columns(self, batch: SignalBatch, views: Mapping[str, SnapshotView], *,
                        level: Literal["edge", "message"] = "edge") -> dict[str, np.ndarray]:
        """Every column as a numpy array, one value per edge or per message (views already resolved)."""
        if level not in LEVELS:
            raise ConfigError(f"The 'level' parameter must be one of {', '.join(map(repr, LEVELS))}. "
                              f"Got {level!r} instead.")
        size = batch.n_edges if level == "edge" else batch.n_messages
        specs = self.specs
        dtypes = {s.name: (s.dtype if level == "edge" else s.message_dtype) for s in specs}
        parts = batch.by_tenant()
        single = len(parts) == 1
        out: dict[str, np.ndarray] = {} if single else {
            s.name: np.empty(size, dtype=dtypes[s.name]) for s in specs}
        for tenant, msgs, eds, sub in parts:
            view = views[tenant]
            for provider in self.providers:
                values = checked_output(provider, provider.compute(sub, view), sub)
                for spec in provider.signals:
                    v = to_level(values[spec.name], provider.level, spec, sub, level, dtypes[spec.name])
                    if single:
                        out[spec.name] = v
                    else:
                        out[spec.name][eds if level == "edge" else msgs] = v
        return out

    def compute(self, messages: Messages, snapshots: Mapping[str, Snapshot | SnapshotView], *,
                level: Literal["edge", "message"] = "edge", cold_start: bool = False) -> pd.DataFrame:
        """Signals for validated messages, each tenant against its own snapshot.

        Parameters
        ----------
        messages : Messages
            Validated messages (:func:`commgraph.graph.validate`), any tenants.
        snapshots : mapping of str to Snapshot or SnapshotView
            Each tenant's snapshot (as deployed: windowed counts are as of its
            ``as_of``; ages such as ``*_days_known`` are relative to each message).
            A privacy-mode snapshot is given as ``SnapshotView(snapshot,
            secret=...)`` (or scored through :class:`Scorer` with ``secrets``).
        level : {"edge", "message"}, default "edge"
            One row per (message, recipient), or per message with each column
            aggregated by its rule (:meth:`describe`).
        cold_start : bool, default False
            Score tenants without a snapshot with the global prior (every
            entity unknown) instead of raising.

        Returns
        -------
        pandas.DataFrame
            ``tenant_id``, ``message_id``, (``recipient`` at edge level), then the
            signals in :attr:`names` order with their declared dtypes. Edge rows
            follow ``messages.edges()``; message rows follow ``messages.frame``
            and keep its index.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> batch = validate(pd.DataFrame({"tenant_id": ["new"], "message_id": "1", "timestamp": "2024-05-03T10:00Z",
        ...     "sender": "eve@x.com", "recipients": "cy@new.com", "direction": "inbound"}))
        >>> SignalSet(["sender"]).compute(batch, {}, cold_start=True)[["sender_is_new", "sender_safe_likelihood"]]
           sender_is_new  sender_safe_likelihood
        0              1                     0.5
        >>> SignalSet(["sender"]).compute(batch, {})
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.CommGraphError: no snapshot for tenant 'new'; snapshots are loaded for []. Build or publish its baselines, or pass cold_start=True to score it with the global prior
        """
        return self.frame(messages, self._computed(messages, snapshots, level, cold_start), level=level)

    def compute_array(self, messages: Messages, snapshots: Mapping[str, Snapshot | SnapshotView], *,
                      level: Literal["edge", "message"] = "edge",
                      cold_start: bool = False) -> tuple[np.ndarray, list[str]]:
        """Signals as one 2-D float32 array (rows x :attr:`names`) for model runtimes.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> batch = validate(pd.DataFrame({"tenant_id": ["new"], "message_id": "1", "timestamp": "2024-05-03T10:00Z",
        ...     "sender": "eve@x.com", "recipients": "cy@new.com", "direction": "inbound"}))
        >>> X, names = SignalSet(["pair"]).compute_array(batch, {}, cold_start=True)
        >>> X.dtype, X.shape, names[0]
        (dtype('float32'), (1, 4), 'pair_messages')
        """
        return stack(self._computed(messages, snapshots, level, cold_start), self.names), self.names

    def _computed(self, messages: Messages, snapshots: Mapping[str, Snapshot | SnapshotView], level: str,
                  cold_start: bool) -> dict[str, np.ndarray]:
        sb = SignalBatch.from_messages(messages)
        views = self._views(sb.tenants, snapshots, cold_start)
        keys = batch_keys(views)
        if keys:  # views of privacy-mode snapshots (made with their secrets): their rows keyed with them
            sb = sb.with_tenant_keys(messages, keys)
        return self.compute_columns(sb, views, level=level)

    def frame(self, messages: Messages, columns: Mapping[str, np.ndarray], *,
              level: Literal["edge", "message"] = "edge") -> pd.DataFrame:
        """The output table from computed columns (identifiers first)."""
        frame = messages.frame
        if level == "edge":
            edges = messages.edges(message_columns=())
            positions = column_array(edges, "message_index")
            recipient = column_array(edges, "recipient")
            if isinstance(recipient, pd.Categorical):
                # Decode the dictionary by taking from its categories (Arrow strings stay Arrow strings).
                recipient = recipient.categories.array.take(recipient.codes, allow_fill=True)
            head = {"tenant_id": _per_edge(column_array(frame, "tenant_id"), column_array(edges, "tenant_id"),
                                           positions),
                    "message_id": column_array(frame, "message_id").take(positions), "recipient": recipient}
            index = pd.RangeIndex(len(edges))
        else:
            head = {"tenant_id": column_array(frame, "tenant_id"), "message_id": column_array(frame, "message_id")}
            index = frame.index
        names = self.names
        values = [columns[name] for name in names]
        if all(isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "iufb" for v in values) \
                and all(isinstance(v, pd.api.extensions.ExtensionArray) for v in head.values()):
            # One 2-D block per dtype (the consolidated layout ``pd.DataFrame(dict)`` makes), built
            # directly: no per-column inference and checks, and four blocks to make instead of 35.
            labels = self._labels(tuple(head))
            blocks = [(v, _PLACEMENTS[j]) for j, v in enumerate(head.values())]
            filled = columns.blocks if isinstance(columns, OutputColumns) else {}
            for dtype, members, placement in self._dtype_groups(tuple(v.dtype for v in values), len(head)):
                block = filled.get(tuple(members))
                if block is None or block.shape[1] != len(index) or not all(
                        _is_row(values[j], block, row) for row, j in enumerate(members)):
                    block = np.empty((len(members), len(index)), dtype)
                    for row, j in enumerate(members):
                        block[row] = values[j]
                blocks.append((block, placement))
            out = create_dataframe_from_blocks(blocks, index, labels)
        else:
            data = dict(head)
            data.update(zip(names, values))
            out = pd.DataFrame(data, index=index, copy=False)
        # The directions the providers declare travel with the frame: evaluate and directed_anomaly_score read
        # them, a provider never registered included.
        out.attrs["suspicious"] = self._suspicious()
        return out

    def _suspicious(self) -> dict[str, str]:
        return {s.name: s.suspicious for s in self.specs if getattr(s, "suspicious", None) is not None}

    def empty_columns(self, size: int, dtypes: Mapping[str, Any]) -> "OutputColumns":
        """Uninitialised output columns (``dtypes``: one per signal name) to fill in place before :meth:`frame`.

        They are the rows of the blocks the output frame is made of, so
        :meth:`frame` hands them over without copying the signals again.

        Examples
        --------
        >>> s = SignalSet(["pair"])
        >>> columns = s.empty_columns(2, {spec.name: spec.dtype for spec in s.specs})
        >>> columns["pair_messages"][:] = [3, 0]
        >>> sorted(columns) == sorted(s.names), columns["pair_messages"].tolist()
        (True, [3, 0])
        """
        names = self.names
        out = OutputColumns()
        for dtype, members, _ in self._dtype_groups(tuple(np.dtype(dtypes[name]) for name in names), 0):
            block = np.empty((len(members), size), dtype)
            out.blocks[tuple(members)] = block
            for row, j in enumerate(members):
                out[names[j]] = block[row]
        return out

    def _dtype_groups(self, dtypes: tuple[np.dtype, ...], offset: int
                      ) -> list[tuple[np.dtype, list[int], np.ndarray]]:
        """Signal columns grouped by dtype: (dtype, their positions among the signals, their output
        column positions), in order of first appearance; made once per dtype layout."""
        cache = self.__dict__.setdefault("_groups_cache", {})
        found = cache.get((dtypes, offset))
        if found is None:
            members: dict[np.dtype, list[int]] = {}
            for j, dtype in enumerate(dtypes):
                members.setdefault(dtype, []).append(j)
            found = cache[(dtypes, offset)] = [(dtype, js, np.asarray(js, dtype=np.intp) + offset)
                                               for dtype, js in members.items()]
        return found

    def _labels(self, head: tuple[str, ...]) -> pd.Index:
        """The output's column labels (an Index as ``pd.DataFrame`` makes them), made once per head."""
        cache = self.__dict__.setdefault("_labels_cache", {})
        found = cache.get(head)
        if found is None:
            found = cache[head] = pd.DataFrame(columns=[*head, *self.names]).columns
            while len(_PLACEMENTS) < len(found):
                _PLACEMENTS.append(np.array([len(_PLACEMENTS)], dtype=np.intp))
        return found

    def __repr__(self) -> str:
        return f"SignalSet({[p.name for p in self.providers]}, {len(self.names)} signals)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignalSet) and self.providers == other.providers

    def __hash__(self) -> int:
        return hash(tuple(type(p) for p in self.providers))


class OutputColumns(dict):
    """Signal columns by name that are the rows of 2-D blocks, one per dtype (:meth:`SignalSet.empty_columns`).

    Examples
    --------
    >>> columns = SignalSet(["pair"]).empty_columns(3, {"pair_messages": "int32", "pair_is_first_contact": "int8",
    ...     "pair_days_since_last": "float32", "pair_recipient_replied": "int8"})
    >>> [block.shape for block in columns.blocks.values()]
    [(1, 3), (2, 3), (1, 3)]
    """

    def __init__(self) -> None:
        super().__init__()
        self.blocks: dict[tuple[int, ...], np.ndarray] = {}  #: signal positions (in set order) -> their block


#: Runs of one value past which :func:`_per_edge` takes the values as any column (a run costs a few numpy calls).
_RUNS_FROM = 64


def _per_edge(values: Any, along_edges: Any, positions: np.ndarray, min_rows: int = 1 << 16) -> Any:
    """``values.take(positions)`` (a message column at each edge's message), built by runs of one value where the
    edges hold the column as a categorical in few runs (the tenant of tenant-ordered input: ten runs over millions
    of edges): each run's string written out as bytes and offsets, no gather of a string per edge (Arrow's take).
    The same array: Arrow strings of the same type and dtype, the same values. Fewer than ``min_rows`` edges
    (a scored batch) are taken.

    Examples
    --------
    >>> values = pd.array(["a", "bb", "bb"], dtype="str")
    >>> along = pd.Categorical(["a", "a", "bb", "bb", "bb"])
    >>> positions = np.array([0, 0, 1, 1, 2], np.int32)
    >>> _per_edge(values, along, positions, min_rows=0).tolist() == values.take(positions).tolist()
    True
    """
    if len(positions) < min_rows:
        return values.take(positions)
    data = getattr(values, "_pa_array", None)
    runs = _runs(along_edges, len(positions))
    if runs is None or not isinstance(data, pa.ChunkedArray) or data.type not in (pa.string(), pa.large_string()) \
            or data.null_count or type(values) is not pd.arrays.ArrowStringArray:
        return values.take(positions)
    starts, codes = runs
    categories = along_edges.categories
    strings = [str(categories[c]).encode("utf-8") for c in codes.tolist()]
    first = values[positions[starts]]  # (the runs' own values: the categorical names them, checked)
    if list(first) != [str(categories[c]) for c in codes.tolist()]:
        return values.take(positions)
    ends = np.append(starts[1:], len(positions))
    widths = np.array([len(b) for b in strings], np.int64)
    run_bytes = (ends - starts) * widths
    size = int(run_bytes.sum())
    large = data.type == pa.large_string()
    if not large and size >= 2**31:
        return values.take(positions)
    offsets = np.empty(len(positions) + 1, np.int64 if large else np.int32)
    base = 0
    for start, end, width in zip(starts.tolist(), ends.tolist(), widths.tolist()):
        offsets[start:end] = np.arange(base, base + (end - start) * width, width) if width else base
        base += (end - start) * width
    offsets[-1] = base
    # (a string repeated by bytes' own multiplication: copies of doubling length, where numpy copies a few
    # bytes per row)
    out = b"".join(text * (end - start) for text, start, end in zip(strings, starts.tolist(), ends.tolist()))
    kind = pa.LargeStringArray if large else pa.StringArray
    array = kind.from_buffers(len(positions), pa.py_buffer(offsets), pa.py_buffer(out))
    return type(values)(pa.chunked_array([array], data.type), dtype=values.dtype)


def _runs(along_edges: Any, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(first edge, category code) of each run of one category along the edges, or None when the column is no
    categorical of ``n`` rows without missing values, or its runs are many."""
    if not isinstance(along_edges, pd.Categorical) or len(along_edges) != n or not n:
        return None
    codes = np.asarray(along_edges.codes)
    starts = np.flatnonzero(codes[1:] != codes[:-1])
    if len(starts) >= _RUNS_FROM:
        return None
    starts = np.append(0, starts + 1)
    if int(codes[starts].min()) < 0:  # (the runs' codes are every code present)
        return None
    return starts, codes[starts].astype(np.int64)


def _is_row(values: np.ndarray, block: np.ndarray, row: int) -> bool:
    """Whether ``values`` is still row ``row`` of ``block`` (not an array put in its place)."""
    return (values.base is block and values.shape == block.shape[1:] and values.strides == block.strides[1:]
            and values.ctypes.data == block.ctypes.data + row * block.strides[0])


#: Block placements (one column each), shared by every output frame.
_PLACEMENTS: list[np.ndarray] = []


def stack(columns: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Columns as one C-ordered float32 matrix."""
    n = len(next(iter(columns.values()))) if columns else 0
    out = np.empty((n, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        out[:, j] = columns[name]
    return out
