"""The snapshot of one tenant: every baseline table as of one instant, plus the state to refresh it."""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from commgraph.graph import CommGraphError, ConfigError, stable_keys  # stable_keys: used by the examples
from commgraph.graph._addresses import DISPLAY_NAME_FORM

from ._aggregate import Decayed, KeyedAggregate
from ._config import BaselineConfig
from ._events import EVENT_COLUMNS, canonical_rows
from ._index import KeyIndex
from ._state import DECAYED_TABLES, LIFETIME_TABLES, WINDOW_TABLES, TenantState
from ._tables import KEY_COLUMNS, TABLES, pair_keys

__all__ = ["Snapshot", "SCHEMA_VERSION", "check_tenant"]

#: Version of the snapshot layout (tables, state, index, manifest). Readers refuse others.
#: 2: ``n_outbound_to`` and the state's ``domain_out`` count messages, not recipient addresses.
SCHEMA_VERSION = 2


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy, zero-copy for one chunk of a primitive type without nulls."""
    if column.num_chunks == 1:  # the usual case, without a list of the chunks
        return _chunk_to_numpy(column.chunk(0))
    chunks = [c for c in column.chunks if len(c)]
    if len(chunks) == 1:
        return _chunk_to_numpy(chunks[0])
    return column.to_numpy()


_BOOL = pa.bool_()


def _chunk_to_numpy(chunk: pa.Array) -> np.ndarray:
    """One chunk as numpy: Arrow's conversion, or for booleans without nulls numpy's unpacking of their bits
    (Arrow's takes twice as long, and a refresh state's flags are millions of them)."""
    if chunk.type != _BOOL or chunk.null_count or not len(chunk):
        return chunk.to_numpy(zero_copy_only=False)
    skip = chunk.offset % 8  # (bits of the first byte before the chunk's first value)
    packed = np.frombuffer(chunk.buffers()[1], np.uint8, (skip + len(chunk) + 7) // 8, chunk.offset // 8)
    return np.unpackbits(packed, count=skip + len(chunk), bitorder="little")[skip:].view(bool)


def check_tenant(expected: str, got: str, what: str) -> None:
    """Refuse to answer for one tenant from another tenant's data."""
    if expected != got:
        raise CommGraphError(f"{what} belongs to tenant {expected!r}, not {got!r}; a snapshot only answers for "
                             "its own tenant")


def _key_array(keys: Any, name: str) -> np.ndarray:
    """Lookup keys as uint64, refusing what is no key: addresses (strings) and floats, which a key column
    becomes once a merge adds a missing row (an exact float key is rare, a rounded one silently misses)."""
    if not hasattr(keys, "__array__") and not np.isscalar(keys) and hasattr(keys, "__iter__"):
        keys = list(keys)  # a list, tuple, set or generator of keys
    if isinstance(keys, list) and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in keys):
        try:  # Python ints (asarray makes floats of ints on both sides of 2**63, and of an empty list)
            return np.array(keys, dtype=np.uint64)
        except OverflowError:
            pass
    array = np.asarray(keys)  # (numpy, pandas and Arrow arrays; one key)
    if array.ndim == 0:
        array = array.reshape(1)
    if not array.size:
        return np.zeros(0, np.uint64)  # (an empty array of no type: nothing to look up)
    if array.dtype.kind not in "ui":
        raise ConfigError(f"Snapshot.lookup takes 64-bit keys in {name!r}, got {array.dtype} values; key addresses "
                          "and names with stable_keys(...) (privacy mode: with the tenant's secret), and keep key "
                          "columns unsigned integers (a merge that adds missing rows makes them floats)")
    return array.astype(np.uint64, copy=False)


class Snapshot:
    """Every baseline of one tenant as of ``as_of``: tables for notebooks, a key lookup for signals.

    Made by :func:`build_baselines`, :func:`refresh` or :meth:`SnapshotStore.load`,
    not directly. Tables are Arrow tables (zero-copy when loaded from a store).

    Attributes
    ----------
    tenant_id : str
    as_of : pandas.Timestamp
        Only mail strictly before it, and labels known before it, count.
    config : BaselineConfig
    priors : dict
        Per entity kind, the fitted ``alpha``, ``beta`` and their ``source``
        (``tenant`` or ``global``); ``global`` holds the global priors.
    fingerprint : str
        An order-free checksum of the input events (messages and labels) the
        snapshot counts: a rebuild and an equivalent refresh share it.

    Examples
    --------
    >>> from commgraph.baselines import build_baselines
    >>> from commgraph.graph import validate
    >>> m = validate(pd.DataFrame({"tenant_id": "acme", "message_id": ["1", "2", "3"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z"],
    ...     "sender": ["ann@vendor.com", "ann@vendor.com", "bo@acme.com"],
    ...     "recipients": ["cy@acme.com", "cy@acme.com; di@acme.com", "ann@vendor.com"]}),
    ...     tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    >>> snap = build_baselines(m, as_of="2024-05-04")["acme"]
    >>> snap
    Snapshot('acme' as of 2024-05-04 00:00 UTC: 2 senders, 3 pairs, 3 mailboxes)
    >>> snap.table("sender")[["sender", "n_messages_7d", "active_days", "n_written_to"]]
               sender  n_messages_7d  active_days  n_written_to
    0     bo@acme.com              1            1             0
    1  ann@vendor.com              2            2             1
    >>> snap.lookup("sender", stable_keys(["ann@vendor.com", "nobody@x.com"])).tolist()
    [1, -1]
    """

    __slots__ = ("tenant_id", "as_of", "config", "tables", "state", "priors", "fingerprint", "secret_check",
                 "own_domains_digest", "display_name_form", "_indexes", "_state_tables", "_state_loader",
                 "_ledger_stored")

    def __init__(self, *, tenant_id: str, as_of: pd.Timestamp, config: BaselineConfig, tables: dict[str, pa.Table],
                 state: TenantState | None, priors: dict[str, Any], fingerprint: str, secret_check: str | None = None,
                 indexes: dict[str, KeyIndex] | None = None, state_tables: dict[str, pa.Table] | None = None,
                 state_loader: Any = None, own_domains_digest: str | None = None, ledger_stored: bool = False,
                 display_name_form: int = DISPLAY_NAME_FORM):
        self.tenant_id = tenant_id
        self.as_of = pd.Timestamp(as_of)
        self.config = config
        self.tables = tables
        self.state = state
        self.priors = priors
        self.fingerprint = fingerprint
        self.secret_check = secret_check
        # The own domains its mail was read with, as the refresh job records them (None: not recorded).
        self.own_domains_digest = own_domains_digest
        # How its display names were normalised (graph's DISPLAY_NAME_FORM when built; older stores: 1).
        self.display_name_form = display_name_form
        self._indexes = dict(indexes or {})
        self._state_tables = state_tables
        # A store reads the refresh state only when a refresh needs it (it is
        # compressed on disk, and an engine serving signals never does).
        self._state_loader = state_loader
        self._ledger_stored = ledger_stored  # (loaded from a store: whether its state files hold the ledger)

    # ------------------------------------------------------------------ reading
    def table(self, name: str) -> pd.DataFrame:
        """One baseline table as a DataFrame (for notebooks).

        Parameters
        ----------
        name : str
            One of ``sender``, ``sender_domain``, ``pair``, ``recipient``,
            ``display_name``, ``tenant``.

        Examples
        --------
        >>> snap = _example()
        >>> snap.table("tenant")[["tenant_id", "n_messages", "n_edges"]]
          tenant_id  n_messages  n_edges
        0      acme           3        4
        """
        return self.arrow(name).to_pandas()

    def arrow(self, name: str) -> pa.Table:
        """One baseline table as an Arrow table (zero-copy).

        Examples
        --------
        >>> _example().arrow("pair").num_rows
        3
        """
        if name not in self.tables:
            raise CommGraphError(f"unknown table {name!r}; tables are " + ", ".join(repr(t) for t in TABLES))
        return self.tables[name]

    def column(self, name: str, column: str) -> np.ndarray:
        """One numeric column as a numpy array, zero-copy when possible.

        Examples
        --------
        >>> _example().column("sender", "n_messages").tolist()
        [1, 2]
        """
        table = self.arrow(name)
        if column not in table.column_names:
            raise CommGraphError(f"table {name!r} has no column {column!r}; columns are {table.column_names}")
        return to_numpy(table.column(column))

    def index(self, name: str) -> KeyIndex:
        """The key index of a table (built once, or loaded with the snapshot).

        Examples
        --------
        >>> _example().index("sender")
        KeyIndex(2 keys, 8 slots)
        """
        if name not in self._indexes:
            keys = self.column(name, KEY_COLUMNS[name]) if name in self.tables else None
            if keys is None:
                raise CommGraphError(f"unknown table {name!r}")
            self._indexes[name] = KeyIndex.build(keys)
        return self._indexes[name]

    def lookup(self, name: str, keys: np.ndarray, recipient_keys: np.ndarray | None = None) -> np.ndarray:
        """Row positions of keys in a table (int64), -1 for keys never seen.

        Parameters
        ----------
        name : str
            The table.
        keys : ndarray of uint64
            Keys of the table's key column; for ``pair``, sender keys when
            ``recipient_keys`` is given (else pair keys, see :func:`pair_keys`).
        recipient_keys : ndarray of uint64, optional
            Recipient keys, for ``pair`` only.

        Examples
        --------
        >>> snap = _example()
        >>> s = stable_keys(["ann@vendor.com", "ann@vendor.com"])
        >>> snap.lookup("pair", s, stable_keys(["di@acme.com", "zed@acme.com"])).tolist()
        [1, -1]
        """
        keys = _key_array(keys, "keys")
        if recipient_keys is not None:
            if name != "pair":
                raise CommGraphError(f"recipient_keys is for the 'pair' table only; got table {name!r}")
            recipient_keys = _key_array(recipient_keys, "recipient_keys")
            if len(recipient_keys) != len(keys):
                raise CommGraphError(f"lookup of pairs: {len(keys)} sender keys and {len(recipient_keys)} recipient "
                                     "keys; give one recipient key per sender key")
            keys = pair_keys(keys, recipient_keys)
        return self.index(name).get(keys)

    def check_tenant(self, tenant_id: str) -> None:
        """Raise unless this snapshot is ``tenant_id``'s.

        Examples
        --------
        >>> _example().check_tenant("globex")
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.CommGraphError: snapshot belongs to tenant 'acme', not 'globex'; a snapshot only answers for its own tenant
        """
        check_tenant(self.tenant_id, tenant_id, "snapshot")

    # ------------------------------------------------------------------ state (for refresh and the store)
    def state_tables(self) -> dict[str, pa.Table]:
        """The refresh state as Arrow tables: lifetime aggregates, decayed sums, windows, events, names."""
        if self._state_tables is None:
            if self.state is None and self._state_loader is not None:
                self._state_tables = self._state_loader()
            else:
                self._state_tables = _state_to_arrow(self.state)
        return self._state_tables

    def hold_state(self) -> None:
        """Map a stored snapshot's refresh state now, so that a refresh later needs no file of its version.

        A snapshot loaded from a store reads its state when a refresh first needs it; by then retention may
        have pruned the version. Mapped, the files outlive their removal. Nothing to do for a snapshot built in
        memory (it holds its state) or one whose state is read already.

        Examples
        --------
        >>> snap = _example()
        >>> snap.hold_state()  # built in memory: it holds its state
        """
        if self._state_tables is None and self.state is None and self._state_loader is not None:
            self._state_tables = self._state_loader()

    def tenant_state(self) -> TenantState:
        """The refresh state (decoded from the state tables when loaded from a store)."""
        if self.state is None:
            self.state = _state_from_arrow(self.tenant_id, self.state_tables())
        return self.state

    @property
    def has_label_ledger(self) -> bool:
        """Whether the refresh state keeps the ledger of counted labels, so that a refresh retracts a label that
        changed (False for snapshots written before commgraph kept one); read without decoding the state.

        Examples
        --------
        >>> _example().has_label_ledger
        True
        """
        if self.state is not None:
            return self.state.labelled is not None
        if self._state_tables is not None:
            return "labelled" in self._state_tables
        return self._ledger_stored

    def meta(self) -> dict[str, Any]:
        """What a manifest records about the snapshot (JSON-ready)."""
        return {"tenant_id": self.tenant_id, "as_of": self.as_of.isoformat(), "config": self.config.to_dict(),
                "priors": self.priors, "input_fingerprint": self.fingerprint, "secret_check": self.secret_check,
                "own_domains_sha256": self.own_domains_digest, "display_name_form": self.display_name_form,
                "row_counts": {name: self.tables[name].num_rows for name in TABLES}}

    def equals(self, other: "Snapshot", *, rtol: float = 1e-9) -> bool:
        """Same tenant, ``as_of`` and table contents (floats within ``rtol``).

        Examples
        --------
        >>> _example().equals(_example())
        True
        """
        if self.tenant_id != other.tenant_id or self.as_of != other.as_of:
            return False
        return not table_differences(self, other, rtol=rtol)

    def __repr__(self) -> str:
        n = {k: self.tables[k].num_rows for k in ("sender", "pair", "recipient")}
        return (f"Snapshot({self.tenant_id!r} as of {self.as_of:%Y-%m-%d %H:%M} UTC: {n['sender']:,} senders, "
                f"{n['pair']:,} pairs, {n['recipient']:,} mailboxes)")


def table_differences(a: Snapshot, b: Snapshot, *, rtol: float = 1e-9) -> list[str]:
    """Names of the (table, column)s that differ between two snapshots, floats within ``rtol``."""
    diffs = []
    for name in TABLES:
        ta, tb = a.tables[name], b.tables[name]
        if ta.column_names != tb.column_names or ta.num_rows != tb.num_rows:
            diffs.append(f"{name}: shape {ta.num_rows}x{ta.column_names} vs {tb.num_rows}x{tb.column_names}")
            continue
        for col in ta.column_names:
            ca, cb = ta.column(col).combine_chunks(), tb.column(col).combine_chunks()
            if pa.types.is_floating(ca.type):
                x, y = ca.to_numpy(zero_copy_only=False), cb.to_numpy(zero_copy_only=False)
                if not np.allclose(x, y, rtol=rtol, atol=1e-12, equal_nan=True):
                    diffs.append(f"{name}.{col}")
            elif not ca.equals(cb):
                diffs.append(f"{name}.{col}")
    return diffs


# --------------------------------------------------------------------------- state <-> Arrow

def _agg_to_arrow(agg: KeyedAggregate, extra: Mapping[str, Any] | None = None) -> pa.Table:
    meta = {"keys": list(agg.keys), "reducers": agg.reducers, **(extra or {})}
    columns = {**agg.keys}
    for name, values in agg.values.items():
        # Histograms (2-D) are stored as fixed-size lists.
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1]) \
            if values.ndim == 2 else values
    table = pa.table(columns)
    return table.replace_schema_metadata({"commgraph": json.dumps(meta, sort_keys=True)})


@functools.lru_cache(maxsize=256)
def _meta(raw: bytes) -> dict[str, Any]:
    """A state table's layout (parsed once: every tenant's tables of one kind carry the same bytes).
    Shared between callers: read it, never change it."""
    return json.loads(raw)


def _fixed_lists(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size list column as a 2-D array (its value buffer, zero-copy when it is exactly the lists')."""
    size = column.type.list_size
    if column.num_chunks == 1:
        chunk = column.chunk(0)
        values = chunk.values  # (all the child's values, whatever the chunk's offset)
        if chunk.offset == 0 and not chunk.null_count and len(values) == len(chunk) * size:
            return values.to_numpy(zero_copy_only=False).reshape(-1, size)
    return to_numpy(pa.chunked_array([c.flatten() for c in column.chunks], column.type.value_type)).reshape(-1, size)


class _Layout:
    """How to read a state table of one schema: its metadata, and per key and value column, its name, its
    position and its kind (found once per schema: a refresh reads tens of tables of each kind, one per tenant).

    A kind is ``numpy`` (Arrow's own conversion), ``bits`` (booleans, see :func:`_chunk_to_numpy`) or
    ``lists`` (fixed-size lists, see :func:`_fixed_lists`)."""

    __slots__ = ("schema", "meta", "keys", "values")

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.meta = _meta(schema.metadata[b"commgraph"])
        kinds = {field.name: (i, "lists" if pa.types.is_fixed_size_list(field.type) else
                              "bits" if field.type == _BOOL else "numpy") for i, field in enumerate(schema)}
        self.keys = [(name, *kinds[name]) for name in self.meta["keys"]]
        self.values = [(name, *kinds[name]) for name in schema.names if name not in self.meta["keys"]]


@functools.lru_cache(maxsize=256)
def _layouts(raw: bytes) -> list[_Layout]:
    """The layouts of the schemas seen with one metadata (one, or a few: an empty table's columns may be of
    other types). Shared between callers: :func:`_layout` appends to it."""
    return []


def _layout(schema: pa.Schema) -> _Layout:
    """A state table's layout, found once per schema (comparing schemas is far cheaper than reading one)."""
    seen = _layouts(schema.metadata[b"commgraph"])
    for layout in seen:
        if layout.schema.equals(schema):
            return layout
    seen.append(_Layout(schema))
    return seen[-1]


def _read(column: pa.ChunkedArray, kind: str) -> np.ndarray:
    """A column of a kind a :class:`_Layout` names, as numpy."""
    if kind == "numpy":
        return column.to_numpy()  # (zero-copy for one chunk without nulls)
    return to_numpy(column) if kind == "bits" else _fixed_lists(column)


def _agg_from_arrow(table: pa.Table) -> tuple[KeyedAggregate, dict[str, Any]]:
    layout = _layout(table.schema)
    keys = {name: _read(table.column(i), kind) for name, i, kind in layout.keys}
    values = {name: _read(table.column(i), kind) for name, i, kind in layout.values}
    return KeyedAggregate(keys, values, layout.meta["reducers"]), layout.meta


# The pairs' first inbound times are stored apart from their other lifetime columns: a commgraph that reads
# pairs without them (written before they were kept) loads such a state as it did, ignoring the extra table.
FIRST_INBOUND = "pair_first_inbound"


def _state_to_arrow(state: TenantState) -> dict[str, pa.Table]:
    out = {f"lifetime.{name}": _agg_to_arrow(state.lifetime[name]) for name in LIFETIME_TABLES if name != "pair"}
    pair = state.lifetime["pair"]
    kept = {c: v for c, v in pair.values.items() if c != "first_inbound"}
    out["lifetime.pair"] = _agg_to_arrow(KeyedAggregate(pair.keys, kept, {c: pair.reducers[c] for c in kept}))
    out[FIRST_INBOUND] = pa.table({"first_inbound": pair.values["first_inbound"]})
    for w, tables in state.windows.items():
        for name in WINDOW_TABLES:
            out[f"window.{w}.{name}"] = _agg_to_arrow(tables[name])
    for name in DECAYED_TABLES:
        d = state.decayed[name]
        out[f"decayed.{name}"] = _agg_to_arrow(d.aggregate, {"anchor": d.anchor, "half_life": d.half_life})
    # Message rows, then the pending rows (label events, and rows that give a withdrawn
    # label's presumption back: flagged as messages, hence the stored split), each in
    # content order (same bytes whatever the input order), as two record batches: a
    # reader takes each as a view.
    schema = pa.schema([(c, pa.from_numpy_dtype(np.dtype(d))) for c, d in EVENT_COLUMNS.items()])
    batches = []
    for rows in (canonical_rows(state.events), canonical_rows([state.pending])):
        batches.append(pa.record_batch([rows[c] for c in EVENT_COLUMNS], schema=schema))
    n_messages = batches[0].num_rows
    events = pa.Table.from_batches([b for b in batches if b.num_rows] or batches[:1], schema=schema)
    out["events"] = events.replace_schema_metadata({"commgraph": json.dumps(
        {"as_of": state.as_of, "fingerprint": str(state.fingerprint), "n_messages": n_messages})})
    out["names"] = pa.table({"key": pa.array(state.names["key"], pa.uint64()),
                             "value": state.names["value"]})
    if state.labelled is not None:
        out["labelled"] = pa.table({"key": pa.array(state.labelled["key"], pa.uint64()),
                                    "label": pa.array(state.labelled["label"], pa.int8())})
    return out


def _state_from_arrow(tenant_id: str, tables: Mapping[str, pa.Table]) -> TenantState:
    if tables is None:
        raise ConfigError("this snapshot carries no refresh state")
    lifetime = {name: _agg_from_arrow(tables[f"lifetime.{name}"])[0] for name in LIFETIME_TABLES}
    pair = lifetime["pair"]
    if FIRST_INBOUND in tables:
        pair.values["first_inbound"] = to_numpy(tables[FIRST_INBOUND].column("first_inbound"))
    else:
        # A state written before pairs kept their first inbound time: a pair with inbound mail began with it,
        # as that commgraph counted first-time senders (the refresh job builds such a tenant in full, which
        # counts them exactly).
        pair.values["first_inbound"] = np.where(pair.values["n_inbound"] > 0, pair.values["first_seen"],
                                                np.iinfo(np.int64).max)
    pair.reducers["first_inbound"] = "min"
    windows: dict[str, dict[str, KeyedAggregate]] = {}
    for part, table in tables.items():
        if part.startswith("window."):
            _, w, name = part.split(".")
            windows.setdefault(w, {})[name] = _agg_from_arrow(table)[0]
    decayed = {}
    for name in DECAYED_TABLES:
        agg, meta = _agg_from_arrow(tables[f"decayed.{name}"])
        decayed[name] = Decayed(agg, anchor=meta["anchor"], half_life=meta["half_life"])
    ev = tables["events"]
    meta = json.loads(ev.schema.metadata[b"commgraph"])
    if "n_messages" in meta:  # message rows first: both parts are views of the stored columns
        parts = {c: _split_at(ev.column(c), int(meta["n_messages"])) for c in EVENT_COLUMNS}
        events = [{c: v[0] for c, v in parts.items()}]
        pending = {c: v[1] for c, v in parts.items()}
    else:  # rows stored in one time order
        rows = {c: to_numpy(ev.column(c)) for c in EVENT_COLUMNS}
        messages = rows["is_message"]
        events = [{c: v[messages] for c, v in rows.items()}]
        pending = {c: v[~messages] for c, v in rows.items()}
    names = {"key": to_numpy(tables["names"].column("key")),
             "value": tables["names"].column("value").combine_chunks()}
    labelled = {"key": to_numpy(tables["labelled"].column("key")),
                "label": to_numpy(tables["labelled"].column("label"))} if "labelled" in tables else None
    return TenantState(tenant_id, int(meta["as_of"]), lifetime, decayed, windows, events, pending, names,
                       int(meta["fingerprint"]), labelled)


def _split_at(column: pa.ChunkedArray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A column's first ``n`` values and the rest, as numpy (the stored message rows and label events are one
    chunk each, or one chunk together: no Arrow slices)."""
    if column.num_chunks == 1:
        values = _chunk_to_numpy(column.chunk(0))
        return values[:n], values[n:]
    if column.num_chunks == 2 and len(column.chunk(0)) == n:
        return _chunk_to_numpy(column.chunk(0)), _chunk_to_numpy(column.chunk(1))
    return to_numpy(column.slice(0, n)), to_numpy(column.slice(n))


def _example() -> Snapshot:
    """A tiny snapshot for the examples in this module."""
    from commgraph.graph import validate

    from ._build import build_baselines

    m = validate(pd.DataFrame({
        "tenant_id": "acme", "message_id": ["1", "2", "3"],
        "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z"],
        "sender": ["ann@vendor.com", "ann@vendor.com", "bo@acme.com"],
        "recipients": ["cy@acme.com", "cy@acme.com; di@acme.com", "ann@vendor.com"]}),
        tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    return build_baselines(m, as_of="2024-05-04")["acme"]

