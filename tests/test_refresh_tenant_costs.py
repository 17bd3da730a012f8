"""Decoding the previous states of a refresh (one layout per schema, found once) against plain pyarrow."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines._aggregate import KeyedAggregate
from commgraph.baselines._snapshot import _agg_from_arrow, _agg_to_arrow


def _python_columns(table: pa.Table) -> dict[str, tuple[str, list]]:
    """Each column's numpy dtype (a fixed-size list's: its items') and its values as Python lists."""
    out = {}
    for field in table.schema:
        values = table.column(field.name).to_pylist()
        item = field.type.value_type if pa.types.is_fixed_size_list(field.type) else field.type
        out[field.name] = (np.dtype(item.to_pandas_dtype()).str, values)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(0, 40), start=st.integers(0, 5),
       chunks=st.integers(1, 3), floats=st.booleans())
def test_state_tables_decode_as_arrow_reads_them(seed, rows, start, chunks, floats) -> None:
    # A state table as a store or a refresh hands it over: one chunk or several, sliced at any row (offsets),
    # empty, and of other column types under the same metadata (an empty tenant's counts may be floats): each
    # column read as Arrow's own Python values give it, keys and values apart, in the stored order.
    rng = np.random.default_rng(seed)
    n = rows + start
    counts = rng.integers(0, 9, n).astype(np.float64 if floats else np.int64)
    agg = KeyedAggregate({"sender_key": np.arange(n, dtype=np.uint64), "day": rng.integers(0, 5, n)},
                         {"n": counts, "hist": rng.integers(0, 9, (n, 3)), "flag": rng.random(n) < 0.5,
                          "last": rng.integers(0, 99, n).astype(np.int32)},
                         {"n": "sum", "hist": "sum", "flag": "max", "last": "max"})
    stored = _agg_to_arrow(agg, {"anchor": 7})
    table = stored.slice(start)
    if chunks > 1:
        cuts = sorted(rng.integers(0, rows + 1, chunks - 1).tolist())
        parts = [table.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, rows])]
        table = pa.concat_tables(parts)
    for _ in range(2):  # (the second time, from the layout found the first)
        got, meta = _agg_from_arrow(table)
        assert meta == json.loads(stored.schema.metadata[b"commgraph"])
        assert list(got.keys) == ["sender_key", "day"] and list(got.values) == ["n", "hist", "flag", "last"]
        assert got.reducers == agg.reducers
        columns = _python_columns(table)
        for name, values in {**got.keys, **got.values}.items():
            dtype, expected = columns[name]
            assert values.dtype.str == dtype and values.tolist() == expected, name
            assert values.shape == ((rows, 3) if name == "hist" else (rows,))


def test_state_tables_of_one_metadata_and_other_schemas_decode_by_their_own() -> None:
    # The layout found for one schema is not taken for another schema under the same metadata.
    meta = {"commgraph": json.dumps({"keys": ["key"], "reducers": {"n": "sum"}})}
    lists = pa.table({"key": pa.array([1, 2], pa.uint64()),
                      "n": pa.FixedSizeListArray.from_arrays(pa.array([1, 2, 3, 4]), 2)}).replace_schema_metadata(meta)
    plain = pa.table({"key": pa.array([1, 2], pa.uint64()), "n": pa.array([5.0, 6.0])}).replace_schema_metadata(meta)
    for table, expected in [(lists, [[1, 2], [3, 4]]), (plain, [5.0, 6.0]), (lists, [[1, 2], [3, 4]])]:
        assert _agg_from_arrow(table)[0].values["n"].tolist() == expected
