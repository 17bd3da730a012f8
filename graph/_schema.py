"""Column names, vocabularies and dtypes of the message contract.

One row per message. The names here are API: readers, validation, the generator
and every later layer use these constants rather than string literals.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "REQUIRED_COLUMNS", "RECIPIENT_COLUMNS", "TYPED_RECIPIENT_COLUMNS", "OPTIONAL_COLUMNS",
    "DIRECTIONS", "AUTH_RESULTS", "LABELS", "RECIPIENT_TYPES", "AUTH_COLUMNS",
    "DIRECTION_DTYPE", "AUTH_DTYPE", "LABEL_DTYPE", "RECIPIENT_TYPE_DTYPE", "STRING_DTYPE",
    "TIMESTAMP_DTYPE", "KEY_DTYPE",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("tenant_id", "message_id", "timestamp", "sender")
#: Recipients come as one ``recipients`` column (a list, or a string separated by
#: ``;`` or ``,``), as typed ``to``/``cc``/``bcc`` columns, or, in the edge layout
#: (one input row per recipient), as a ``recipient`` column.
RECIPIENT_COLUMNS: tuple[str, ...] = ("recipients",)
TYPED_RECIPIENT_COLUMNS: tuple[str, ...] = ("to", "cc", "bcc")
EDGE_RECIPIENT_COLUMN = "recipient"
EDGE_RECIPIENT_TYPE_COLUMN = "recipient_type"

AUTH_COLUMNS: tuple[str, ...] = ("spf", "dkim", "dmarc")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "direction", "sender_display_name", "reply_to", "return_path", "sender_ip",
    *AUTH_COLUMNS, "label", "labeled_at", "subject",
)

DIRECTIONS: tuple[str, ...] = ("inbound", "outbound", "internal")
AUTH_RESULTS: tuple[str, ...] = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
LABELS: tuple[str, ...] = ("safe", "attack", "spam")
RECIPIENT_TYPES: tuple[str, ...] = ("to", "cc", "bcc")

# Arrow-backed strings: 2-5x faster to factorise and hash than object strings
# and a third of the memory (../shared/PERFORMANCE.md).
STRING_DTYPE = pd.StringDtype("pyarrow", na_value=float("nan"))
TIMESTAMP_DTYPE = pd.DatetimeTZDtype("ns", "UTC")
KEY_DTYPE = "uint64"
DIRECTION_DTYPE = pd.CategoricalDtype(list(DIRECTIONS))
AUTH_DTYPE = pd.CategoricalDtype(list(AUTH_RESULTS))
LABEL_DTYPE = pd.CategoricalDtype(list(LABELS))
RECIPIENT_TYPE_DTYPE = pd.CategoricalDtype(list(RECIPIENT_TYPES))
