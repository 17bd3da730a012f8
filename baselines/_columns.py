"""Arrow columns of stacked tenants, made tenant by tenant.

:func:`._tables.derive_many` computes each column over every tenant of a
batch at once; its Arrow columns (strings, timestamps, lists) are kept as the
stacked values and made into one array per tenant by ``part(lo, hi)`` (the
rows of that tenant). An Arrow array sliced out of a stacked one would keep
the bytes around its slice, and an IPC writer writes some of them: a snapshot
would not have the bytes the tenant's own derive gives.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ._segments import Factorized, lookup, runs
from ._stacked import segment_positions

__all__ = ["COLUMNS", "Names", "Strings", "Timestamps", "Hours", "Values", "Lists", "lists"]


def _ts(values: np.ndarray, sentinel: int) -> pa.Array:
    """Timestamps (ns, UTC), null where ``values`` holds the sentinel: the values as the data buffer and
    a packed validity bitmap (``pa.array(..., mask=)`` converts value by value, twice as slow)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    valid = values != sentinel
    n_null = len(values) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if n_null else None
    return pa.Array.from_buffers(pa.timestamp("ns", tz="UTC"), len(values), [bitmap, pa.py_buffer(values)],
                                 null_count=n_null)


def _hours(histogram: np.ndarray) -> pa.Array:
    flat = histogram.astype(np.int32).ravel()
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), 24)


class Timestamps:
    """Timestamps (ns, UTC), null where the value is the sentinel.

    Examples
    --------
    >>> Timestamps(np.array([5, -1, 7]), -1).part(1, 3).to_pylist()[0] is None
    True
    """

    __slots__ = ("values", "sentinel")

    def __init__(self, values: np.ndarray, sentinel: int):
        self.values, self.sentinel = values, sentinel

    def part(self, lo: int, hi: int) -> pa.Array:
        return _ts(self.values[lo:hi], self.sentinel)


class Hours:
    """Hour-of-day histograms, 24 counts a row.

    Examples
    --------
    >>> len(Hours(np.ones((3, 24), np.int64)).part(1, 3))
    2
    """

    __slots__ = ("histogram",)

    def __init__(self, histogram: np.ndarray):
        self.histogram = histogram

    def part(self, lo: int, hi: int) -> pa.Array:
        return _hours(self.histogram[lo:hi])


class Values:
    """One Python value a row (the tenant table's).

    Examples
    --------
    >>> Values(["a", "b"]).part(1, 2).to_pylist()
    ['b']
    """

    __slots__ = ("values", "type")

    def __init__(self, values: list, type: pa.DataType | None = None):
        self.values, self.type = values, type

    def part(self, lo: int, hi: int) -> pa.Array:
        return pa.array(self.values[lo:hi], type=self.type)


class Strings:
    """Strings by position in a string array (null where ``found`` is false).

    Examples
    --------
    >>> Strings(pa.array(["x", "y"]), np.array([1, 0, 0]), np.array([True, True, False])).part(1, 3).to_pylist()
    ['x', None]
    """

    __slots__ = ("values", "pos", "found")

    def __init__(self, values: pa.Array, pos: np.ndarray, found: np.ndarray):
        self.values, self.pos, self.found = values, pos, found

    def at(self, rows: np.ndarray) -> "Strings":
        """The strings of these rows, in that order (each key's lookup reused, not done again).

        Examples
        --------
        >>> strings = Strings(pa.array(["x", "y"]), np.array([1, 0]), np.array([True, False]))
        >>> strings.at(np.array([1, 0, 0])).part(0, 3).to_pylist()
        [None, 'y', 'y']
        """
        return Strings(self.values, self.pos[rows], self.found[rows])

    def part(self, lo: int, hi: int) -> pa.Array:
        # Arrow take: no Python string objects; absent keys become nulls (a mask only when some are absent).
        pos, found = self.pos[lo:hi], self.found[lo:hi]
        return self.values.take(pa.array(pos) if found.all() else pa.array(pos, mask=~found))


class Lists:
    """A list a row: row ``i`` holds values ``offsets[i]:offsets[i + 1]``.

    Examples
    --------
    >>> Lists(np.array([0, 2, 3]), np.array([4, 5, 6]), pa.int64()).part(1, 2).to_pylist()
    [[6]]
    """

    __slots__ = ("offsets", "values", "type")

    def __init__(self, offsets: np.ndarray, values: np.ndarray | Strings, type: pa.DataType):
        self.offsets, self.values, self.type = offsets, values, type

    def part(self, lo: int, hi: int) -> pa.Array:
        start, end = int(self.offsets[lo]), int(self.offsets[hi])
        values = self.values.part(start, end) if isinstance(self.values, Strings) else \
            pa.array(self.values[start:end], type=self.type)
        return pa.ListArray.from_arrays(pa.array((self.offsets[lo:hi + 1] - start).astype(np.int32)), values)


COLUMNS = (Timestamps, Hours, Values, Strings, Lists)


class Names:
    """Strings behind keys (absent in privacy mode), each segment's own sorted keys and their strings.

    Examples
    --------
    >>> names = Names.of([{"key": np.array([1, 2], dtype=np.uint64), "value": pa.array(["a", "b"])},
    ...                   {"key": np.array([2], dtype=np.uint64), "value": pa.array(["c"])}])
    >>> strings = names.take(np.array([2, 1, 2], dtype=np.uint64), np.array([0, 2, 3]))
    >>> strings.part(0, 2).to_pylist(), strings.part(2, 3).to_pylist()
    (['b', 'a'], ['c'])
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
    >>> out["n"].part(0, 2).to_pylist(), out["n"].part(2, 3).to_pylist()
    ([[5, 6], [7]], [[8]])
    """
    offs = np.empty(len(owner_keys) + 1, np.int64)
    offs[:-1] = segment_positions([member_owner], [owner_keys], member_bounds, owner_bounds) if len(owner_keys) \
        else np.zeros(0, np.int64)
    offs[-1] = len(member_owner)
    return {name: Lists(offs, values, types[name]) for name, values in columns.items()}
