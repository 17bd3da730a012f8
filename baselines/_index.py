"""A vectorised open-addressing hash index: uint64 keys in, row positions out.

Signals look keys up in batches; the index maps each key to its row in a
baseline table, or -1 when the key is absent. Why not ``pd.Index(keys)``? It
would be built again at every load (about 50 ms per million keys), and over
sorted keys, which our tables are, it silently falls back to binary search
(14x slower, ../shared/PERFORMANCE.md). This index is two flat arrays (the
table's own key column and an int32 slot array of size 2-4x the keys), saved
beside the table and memory-mapped with it, so loading costs nothing.

Layout (part of the snapshot format): slots has a power-of-two size; the home
slot of a key is ``(key * 0x9E3779B97F4A7C15 mod 2**64) >> (64 - log2(size))``
(Fibonacci hashing); collisions probe linearly. Probing runs in rounds, each a
handful of numpy operations over the keys still unresolved. Building places the
keys in order of home slot (ties by row), so a key's slot is one running
maximum: ``slot[i] = i + max(home[j] - j for j <= i)`` over that order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KeyIndex"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _home(keys: np.ndarray, shift: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return ((keys * _GOLDEN) >> np.uint64(shift)).astype(np.int64)


def _first_free(wanted: np.ndarray) -> np.ndarray:
    """Slots of keys inserted in order of their (non-decreasing) wanted slots, by linear probing
    without wrapping: each takes its wanted slot or the one after the previous key's."""
    step = np.arange(len(wanted), dtype=np.int64)
    return step + np.maximum.accumulate(wanted - step)


class KeyIndex:
    """Row positions of uint64 keys in a table, by open addressing.

    Parameters
    ----------
    keys : ndarray of uint64
        The table's key column (distinct), in row order.
    slots : ndarray of int32
        Row position in each slot, -1 when empty (from :meth:`build`).

    Examples
    --------
    >>> keys = np.array([42, 7, 1_000_003], dtype=np.uint64)
    >>> index = KeyIndex.build(keys)
    >>> index.get(np.array([7, 5, 1_000_003, 42], dtype=np.uint64)).tolist()
    [1, -1, 2, 0]
    """

    __slots__ = ("keys", "slots", "_shift", "_mask")

    def __init__(self, keys: np.ndarray, slots: np.ndarray):
        self.keys = keys
        self.slots = slots
        size = len(slots)
        self._shift = 64 - (size.bit_length() - 1)
        self._mask = size - 1

    @classmethod
    def build(cls, keys: np.ndarray) -> "KeyIndex":
        """Index distinct keys (load factor at most 1/2).

        Examples
        --------
        >>> KeyIndex.build(np.arange(5, dtype=np.uint64)).slots.size
        16
        """
        keys = np.asarray(keys, dtype=np.uint64)
        size = 8
        while size < 2 * len(keys):
            size *= 2
        slots = np.full(size, -1, dtype=np.int32)
        home = _home(keys, 64 - (size.bit_length() - 1))
        # Inserting keys in order of home slot, each lands on the first free slot
        # from its home: past the slot of the key before it, so the slots follow
        # from one running maximum instead of a probe per key and collision.
        # One sort of (home, row) packed in 64 bits (rows < 2**31 fit below the
        # home): numpy's vectorised sort, several times faster than an argsort.
        packed = np.sort((home << 32) | np.arange(len(keys), dtype=np.int64))
        rows, wanted = (packed & 0xFFFFFFFF).astype(np.int32), packed >> 32
        while True:
            place = _first_free(wanted)
            spilled = int(np.searchsorted(place, size))  # past the end: they wrap to the start
            if spilled == len(place):
                break
            # A wrapped key goes first where it lands (it was inserted before the
            # keys homed there); lay the keys out again with it, until none spills.
            wanted = np.concatenate([place[spilled:] - size, wanted[:spilled]])
            rows = np.concatenate([rows[spilled:], rows[:spilled]])
            order = np.argsort(wanted, kind="stable")
            wanted, rows = wanted[order], rows[order]
        slots[place] = rows
        return cls(keys, slots)

    def get(self, queries: np.ndarray) -> np.ndarray:
        """Row positions of ``queries`` (int64), -1 where a key is absent.

        Examples
        --------
        >>> KeyIndex.build(np.array([3], dtype=np.uint64)).get(np.array([3, 4], dtype=np.uint64)).tolist()
        [0, -1]
        """
        queries = np.asarray(queries, dtype=np.uint64)
        out = np.full(queries.size, -1, dtype=np.int64)
        if not self.keys.size or not queries.size:
            return out
        active = np.arange(queries.size)
        probe = _home(queries, self._shift)
        wanted = queries
        while active.size:
            row = self.slots[probe]
            occupied = row >= 0
            hit = occupied & (self.keys[np.maximum(row, 0)] == wanted)
            out[active[hit]] = row[hit]
            go_on = occupied & ~hit
            active, wanted = active[go_on], wanted[go_on]
            probe = (probe[go_on] + 1) & self._mask
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of the slot array (the keys belong to the table)."""
        return int(self.slots.nbytes)

    def __repr__(self) -> str:
        return f"KeyIndex({self.keys.size:,} keys, {self.slots.size:,} slots)"
