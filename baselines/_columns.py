"""Arrow columns of stacked tenants, made tenant by tenant.

:func:`._tables.derive_many` computes each column over every tenant of a
batch at once; its Arrow columns (strings, timestamps, lists) are kept as the
stacked values and made into one array per tenant by ``parts(edges)`` (tenant
``i``'s rows are ``edges[i]:edges[i + 1]``): the work on the stacked values
(a conversion, a take, a validity mask) is done once, and each tenant's array
is put together from its own share of the buffers. An Arrow array sliced out
of a stacked one would keep the bytes around its slice, and an IPC writer
writes some of them (the padding after a string's or an int32's last value):
a snapshot would not have the bytes the tenant's own derive gives.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ._segments import Factorized, lookup, runs
from ._stacked import segment_positions

__all__ = ["COLUMNS", "Names", "Strings", "Timestamps", "Hours", "Values", "Lists", "lists"]

_TIMESTAMP = pa.timestamp("ns", tz="UTC")
_HOURS = pa.list_(pa.int32(), 24)


def _spans(edges: list[int]) -> list[tuple[int, int]]:
    """Each segment's first and end row."""
    return list(zip(edges[:-1], edges[1:]))


def _null_counts(valid: np.ndarray, edges: list[int]) -> list[int]:
    """Each segment's rows where ``valid`` is false."""
    if len(edges) == 2:  # (one segment: a count)
        return [edges[1] - edges[0] - int(np.count_nonzero(valid[edges[0]:edges[1]]))]
    return np.diff(np.searchsorted(np.flatnonzero(~valid), edges)).tolist()  # (a cumulative sum: 10x as long)


def _primitive(type: pa.DataType, values: np.ndarray, valid: np.ndarray, n_null: int) -> pa.Array:
    """An Arrow array of contiguous numpy ``values`` as its data buffer, null where ``valid`` is false: a packed
    validity bitmap only where some are (``pa.array(..., mask=)`` converts value by value, twice as slow)."""
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if n_null else None
    return pa.Array.from_buffers(type, len(values), [bitmap, pa.py_buffer(values)], null_count=n_null)


class Timestamps:
    """Timestamps (ns, UTC), null where the value is the sentinel.

    Examples
    --------
    >>> [a.to_pylist()[0] is None for a in Timestamps(np.array([5, -1, 7]), -1).parts([0, 1, 3])]
    [False, True]
    """

    __slots__ = ("values", "sentinel")

    def __init__(self, values: np.ndarray, sentinel: int):
        self.values, self.sentinel = values, sentinel

    def parts(self, edges: list[int]) -> list[pa.Array]:
        values = np.ascontiguousarray(self.values, dtype=np.int64)
        valid = values != self.sentinel
        return [_primitive(_TIMESTAMP, values[lo:hi], valid[lo:hi], n_null)
                for (lo, hi), n_null in zip(_spans(edges), _null_counts(valid, edges))]


class Hours:
    """Hour-of-day histograms, 24 counts a row.

    Examples
    --------
    >>> [len(a) for a in Hours(np.ones((3, 24), np.int64)).parts([0, 1, 3])]
    [1, 2]
    """

    __slots__ = ("histogram",)

    def __init__(self, histogram: np.ndarray):
        self.histogram = histogram

    def parts(self, edges: list[int]) -> list[pa.Array]:
        flat = np.ascontiguousarray(self.histogram, dtype=np.int32).reshape(-1)
        return [pa.Array.from_buffers(_HOURS, hi - lo, [None], children=[
                    pa.Array.from_buffers(pa.int32(), 24 * (hi - lo), [None, pa.py_buffer(flat[24 * lo:24 * hi])])])
                for lo, hi in _spans(edges)]


class Values:
    """One Python value a row (the tenant table's).

    Examples
    --------
    >>> [a.to_pylist() for a in Values(["a", "b"]).parts([0, 1, 2])]
    [['a'], ['b']]
    """

    __slots__ = ("values", "type")

    def __init__(self, values: list, type: pa.DataType | None = None):
        self.values, self.type = values, type

    def parts(self, edges: list[int]) -> list[pa.Array]:
        return [pa.array(self.values[lo:hi], type=self.type) for lo, hi in _spans(edges)]


class Strings:
    """Strings by position in a string array (null where ``found`` is false).

    Examples
    --------
    >>> strings = Strings(pa.array(["x", "y"]), np.array([1, 0, 0]), np.array([True, True, False]))
    >>> [a.to_pylist() for a in strings.parts([0, 1, 3])]
    [['y'], ['x', None]]
    """

    __slots__ = ("values", "pos", "found")

    def __init__(self, values: pa.Array, pos: np.ndarray, found: np.ndarray):
        self.values, self.pos, self.found = values, pos, found

    def at(self, rows: np.ndarray) -> "Strings":
        """The strings of these rows, in that order (each key's lookup reused, not done again).

        Examples
        --------
        >>> strings = Strings(pa.array(["x", "y"]), np.array([1, 0]), np.array([True, False]))
        >>> strings.at(np.array([1, 0, 0])).parts([0, 3])[0].to_pylist()
        [None, 'y', 'y']
        """
        return Strings(self.values, self.pos[rows], self.found[rows])

    def parts(self, edges: list[int]) -> list[pa.Array]:
        # One Arrow take of every segment's strings (no Python string objects; absent keys become nulls, a mask
        # only when some are absent), then each segment's offsets (from 0), characters and validity of its own.
        indices = pa.array(self.pos) if self.found.all() else pa.array(self.pos, mask=~self.found)
        taken = self.values.take(indices)
        if len(edges) == 2 and edges[0] == 0 and edges[1] == len(taken):  # one segment: the take is its array
            return [taken]
        if not (pa.types.is_string(taken.type) or pa.types.is_large_string(taken.type)) or taken.buffers()[1] is None:
            # (values of another type, such as the null type of an empty list's array: each segment's own take)
            return [self.values.take(indices.slice(lo, hi - lo)) for lo, hi in _spans(edges)]
        width = np.int64 if pa.types.is_large_string(taken.type) else np.int32
        offsets = np.frombuffer(taken.buffers()[1], width, len(taken) + 1, taken.offset * np.dtype(width).itemsize)
        data = taken.buffers()[2] or pa.py_buffer(b"")
        valid = taken.is_valid().to_numpy(zero_copy_only=False)
        out = []
        for (lo, hi), n_null, (start, end) in zip(_spans(edges), _null_counts(valid, edges),
                                                   _spans(offsets[edges].tolist())):
            bitmap = pa.py_buffer(np.packbits(valid[lo:hi], bitorder="little")) if n_null else None
            out.append(pa.Array.from_buffers(taken.type, hi - lo, [bitmap, pa.py_buffer(offsets[lo:hi + 1] - start),
                                                                   data.slice(start, end - start)], null_count=n_null))
        return out


class Lists:
    """A list a row: row ``i`` holds values ``offsets[i]:offsets[i + 1]``.

    Examples
    --------
    >>> [a.to_pylist() for a in Lists(np.array([0, 2, 3]), np.array([4, 5, 6]), pa.int64()).parts([0, 1, 2])]
    [[[4, 5]], [[6]]]
    """

    __slots__ = ("offsets", "values", "type")

    def __init__(self, offsets: np.ndarray, values: np.ndarray | Strings, type: pa.DataType):
        self.offsets, self.values, self.type = offsets, values, type

    def parts(self, edges: list[int]) -> list[pa.Array]:
        value_edges = self.offsets[edges].tolist()
        if isinstance(self.values, Strings):
            values = self.values.parts(value_edges)
        else:
            flat = np.ascontiguousarray(self.values, dtype=self.type.to_pandas_dtype())
            values = [pa.Array.from_buffers(self.type, end - start, [None, pa.py_buffer(flat[start:end])])
                      for start, end in _spans(value_edges)]
        list_type = pa.list_(values[0].type) if values else None  # (the strings' type is the take's)
        return [pa.Array.from_buffers(list_type, hi - lo, [None, pa.py_buffer(
                    (self.offsets[lo:hi + 1] - start).astype(np.int32))], children=[v])
                for (lo, hi), start, v in zip(_spans(edges), value_edges, values)]


COLUMNS = (Timestamps, Hours, Values, Strings, Lists)


class Names:
    """Strings behind keys (absent in privacy mode), each segment's own sorted keys and their strings.

    Examples
    --------
    >>> names = Names.of([{"key": np.array([1, 2], dtype=np.uint64), "value": pa.array(["a", "b"])},
    ...                   {"key": np.array([2], dtype=np.uint64), "value": pa.array(["c"])}])
    >>> strings = names.take(np.array([2, 1, 2], dtype=np.uint64), np.array([0, 2, 3]))
    >>> [a.to_pylist() for a in strings.parts([0, 2, 3])]
    [['b', 'a'], ['c']]
    """

    def __init__(self, keys: np.ndarray, values: pa.Array, bounds: np.ndarray):
        self.keys, self.values, self.bounds = keys, values, bounds

    @classmethod
    def of(cls, names: Sequence[dict[str, Any]]) -> "Names":
        values = [n["value"].combine_chunks() if isinstance(n["value"], pa.ChunkedArray) else n["value"]
                  for n in names]
        return cls(np.concatenate([n["key"] for n in names]), values[0] if len(values) == 1 else
                   pa.concat_arrays(values), np.cumsum([0] + [len(n["key"]) for n in names]))

    def take(self, keys: np.ndarray | Factorized, bounds: np.ndarray | None = None) -> Strings:
        """The string of each key (null where its segment has none); ``keys`` in segments ``bounds`` (sorted in
        each: each run looked up once), or factorised already (each distinct key looked up once). Keys in no
        order are looked up one run of equal keys at a time: sort them first (:meth:`Strings.at` puts the
        strings back in the keys' order)."""
        if isinstance(keys, Factorized):
            pos, found = lookup(keys.distinct, keys.bounds, self.keys, self.bounds)
            pos, found = pos[keys.codes], found[keys.codes]
        else:
            starts = runs(keys, bounds)
            pos, found = lookup(keys[starts], np.searchsorted(starts, bounds), self.keys, self.bounds)
            lengths = np.diff(np.append(starts, len(keys)))
            pos, found = np.repeat(pos, lengths), np.repeat(found, lengths)
        return Strings(self.values, pos, found)


def lists(owner_keys: np.ndarray, owner_bounds: np.ndarray, member_owner: np.ndarray, member_bounds: np.ndarray,
           columns: dict[str, np.ndarray | Strings], types: dict[str, pa.DataType]) -> dict[str, Lists]:
    """List columns per owner from member rows sorted by owner in each segment (every member's owner is in its
    segment's ``owner_keys``).

    Examples
    --------
    >>> owners, members = np.array([1, 2, 1], dtype=np.uint64), np.array([1, 1, 2, 1], dtype=np.uint64)
    >>> out = lists(owners, np.array([0, 2, 3]), members, np.array([0, 3, 4]), {"n": np.array([5, 6, 7, 8])},
    ...             {"n": pa.int64()})
    >>> [a.to_pylist() for a in out["n"].parts([0, 2, 3])]
    [[[5, 6], [7]], [[8]]]
    """
    offs = np.empty(len(owner_keys) + 1, np.int64)
    offs[:-1] = segment_positions([member_owner], [owner_keys], member_bounds, owner_bounds) if len(owner_keys) \
        else np.zeros(0, np.int64)
    offs[-1] = len(member_owner)
    return {name: Lists(offs, values, types[name]) for name, values in columns.items()}
