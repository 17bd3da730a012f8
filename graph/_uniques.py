"""Do string work once per distinct value and map the results back."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ._schema import STRING_DTYPE


def spread(results: Sequence | np.ndarray, codes: np.ndarray, index: pd.Index, dtype=STRING_DTYPE) -> pd.Series:
    """Map per-unique ``results`` back to rows through factorise ``codes`` (-1 = missing)."""
    array = pd.array(np.asarray(results, dtype=object) if dtype == STRING_DTYPE else results, dtype=dtype)
    return pd.Series(array.take(codes, allow_fill=True), index=index)


def map_unique_strings(values: pd.Series, func: Callable[[str], object], dtype=STRING_DTYPE) -> pd.Series:
    """Apply ``func`` to each distinct non-missing string of ``values``, aligned with ``values``."""
    codes, uniques = pd.factorize(values.astype(STRING_DTYPE), use_na_sentinel=True)
    return spread([func(u) for u in uniques], codes, values.index, dtype)


def categorical_take(values: pd.Series, positions: np.ndarray) -> pd.Categorical:
    """``values`` at ``positions`` as a categorical over ``values``' distinct strings.

    Repeating a string column along edges this way moves 4-byte codes instead of
    copying strings: several times faster, and a fraction of the memory.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return pd.Categorical.from_codes(codes.astype(np.int32)[positions], categories=pd.Index(uniques, dtype=STRING_DTYPE))
