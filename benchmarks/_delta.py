"""How many rows of each table a refresh changes: the size of the delta a refresh in proportion to the new mail
would have to write, against the whole tables a refresh writes today."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Columns that change on every row of their table with each refresh, whatever the new mail: decayed counts
#: (valued at the new as_of) and likelihoods (the priors are refitted at every refresh).
EVERY_ROW = ("decayed_messages", "likelihood_safe", "likelihood_safe_lower")


def _equal_values(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Per row, whether two arrays of one type hold the same value (two nulls are the same)."""
    same = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
    return same | both_null


def _equal_rows(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Per row, whether two columns of one type hold the same value, lists element by element."""
    if not (pa.types.is_list(a.type) or pa.types.is_fixed_size_list(a.type)):
        return _equal_values(a, b)
    lengths_a = pc.fill_null(pc.list_value_length(a), -1).to_numpy(zero_copy_only=False)
    lengths_b = pc.fill_null(pc.list_value_length(b), -1).to_numpy(zero_copy_only=False)
    same = lengths_a == lengths_b
    rows = np.flatnonzero(same)
    if not len(rows):
        return same
    taken = pa.array(rows)
    flat_a, flat_b = pc.list_flatten(a.take(taken)), pc.list_flatten(b.take(taken))
    differ = np.concatenate([[0], np.cumsum(~_equal_values(flat_a, flat_b))])
    ends = np.concatenate([[0], np.cumsum(np.maximum(lengths_a[rows], 0))])
    same[rows] = differ[ends[1:]] == differ[ends[:-1]]
    return same


def changed_rows(before: pa.Table, after: pa.Table, key: str, ignore: Iterable[str] = ()) -> tuple[int, int]:
    """Rows of ``after`` whose key ``before`` lacks, and rows whose values differ from ``before``'s row of the
    same key in any column but ``ignore`` (``key``: a column of unique keys, in any order).

    Examples
    --------
    >>> before = pa.table({"k": pa.array([3, 1, 2], pa.uint64()), "n": [1, 1, 1], "h": [[3], [1], [2]]})
    >>> after = pa.table({"k": pa.array([1, 2, 3, 4], pa.uint64()), "n": [1, 2, 1, 1], "h": [[1], [2], [4], [1]]})
    >>> changed_rows(before, after, "k"), changed_rows(before, after, "k", ignore=["h"])
    ((1, 2), (1, 1))
    """
    old_keys = before.column(key).to_numpy()
    new_keys = after.column(key).to_numpy()
    order = np.argsort(old_keys)  # (a table is sorted by its key columns: the pair table by sender, recipient)
    pos = np.minimum(np.searchsorted(old_keys[order], new_keys), max(len(old_keys) - 1, 0))
    found = old_keys[order[pos]] == new_keys if len(old_keys) else np.zeros(len(new_keys), bool)
    matched = np.flatnonzero(found)
    old, new = before.take(pa.array(order[pos[matched]])), after.take(pa.array(matched))
    same = np.ones(len(matched), bool)
    for name in after.column_names:
        if name not in ignore and name in before.column_names:
            same &= _equal_rows(old.column(name).combine_chunks(), new.column(name).combine_chunks())
    return int((~found).sum()), int((~same).sum())


def delta_summary(previous: Mapping[str, object], refreshed: Mapping[str, object],
                  keys: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Per table (tenant tables left out: one row each), summed over tenants: its rows after the refresh, the new
    ones, and the rows that differ from the previous snapshot's in any column and in any column but
    :data:`EVERY_ROW`'s (what a refresh would have to write if those were valued when read)."""
    out: dict[str, dict[str, int]] = {}
    for table, key in keys.items():
        if table == "tenant":
            continue
        totals = dict.fromkeys(("rows", "new", "changed", "changed_by_mail"), 0)
        for tenant, snapshot in refreshed.items():
            before, after = previous[tenant].tables[table], snapshot.tables[table]
            new, changed = changed_rows(before, after, key)
            _, by_mail = changed_rows(before, after, key, ignore=EVERY_ROW)
            totals["rows"] += after.num_rows
            totals["new"] += new
            totals["changed"] += changed
            totals["changed_by_mail"] += by_mail
        out[table] = totals
    return out
