"""The validated, normalised messages of one or more tenants, with their edges."""

from __future__ import annotations

import html
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from ._errors import CommGraphError, Problem, ReasonCode, SchemaError, plural
from ._schema import STRING_DTYPE

__all__ = ["Messages", "REJECT_COLUMNS", "message_index"]

#: The leading columns of a ``rejects`` frame; the original row's columns follow.
REJECT_COLUMNS = ("reject_column", "reject_reason", "reject_value", "reject_message", "reject_action", "reject_row")


def message_index(positions: np.ndarray, n_messages: int) -> np.ndarray:
    """Positions of edges' messages: int32 while the messages fit (half the memory of int64)."""
    return positions.astype(np.int32 if n_messages < 2**31 else np.int64, copy=False)



def _distinct_rows(rejects: pd.DataFrame) -> int:
    """Input rows among ``rejects`` (a row with several problems counts once).

    A row is its ``reject_row``, its position: labels repeat in a frame joined
    without ``ignore_index``, and restart in every file an archive read as a whole.
    A record without one (a line no row was read from; rejects made before the
    column) is its (source file, label) pair where the file is known.
    """
    numbered = rejects["reject_row"].notna().to_numpy() if "reject_row" in rejects else np.zeros(len(rejects), bool)
    counted = int(rejects["reject_row"][numbered].nunique()) if numbered.any() else 0
    rest = rejects[~numbered]
    if "source_file" not in rest:
        return counted + int(rest.index.nunique())
    return counted + len(pd.MultiIndex.from_arrays([rest["source_file"].astype(object), rest.index]).unique())


def renumber_rejects(rejects: pd.DataFrame, positions: np.ndarray | None = None, offset: int = 0) -> pd.DataFrame:
    """``rejects`` of rows validated out of a larger input, numbered among its rows: each ``reject_row`` r
    becomes ``positions[r] + offset`` (``positions``: where the rows validated stand in it; None: in order)."""
    if "reject_row" not in rejects or not len(rejects) or (positions is None and not offset):
        return rejects
    rows = rejects["reject_row"]
    numbered = rows.notna().to_numpy()
    new = rows.to_numpy(dtype=np.int64, na_value=0)
    if positions is not None:
        new[numbered] = np.asarray(positions, dtype=np.int64)[new[numbered]]
    renumbered = pd.array(new + offset, dtype="Int64")
    renumbered[~numbered] = pd.NA
    return rejects.assign(reject_row=renumbered)


class Messages:
    """Messages that satisfy the contract: one row per message, plus one row per edge.

    Built by :func:`validate` or :func:`read_messages`, not directly.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per message, in input order, indexed by the input's row labels.
        Columns: ``tenant_id``, ``message_id``, ``timestamp`` (UTC), ``sender``,
        ``sender_domain`` (registrable), ``sender_display_name`` (normalised),
        ``direction``, ``n_recipients`` (distinct), ``n_repeated_recipients``
        (entries that named a recipient already in the message, merged into one
        edge, as a person in both To and Cc), the optional contract columns (missing
        where absent from the input), ``sender_key`` (stable 64-bit), then the
        input's other columns unchanged.
    rejects : pandas.DataFrame
        What could not be used, one row per (input row, problem): the
        :data:`REJECT_COLUMNS` then the original row as it was given.
        ``reject_action`` is ``row_rejected`` (the message was left out) or
        ``value_dropped`` (one recipient was left out, the message kept).
        ``reject_row`` is the row's position in the input (0 for the first:
        ``frame.iloc[reject_row]`` of the frame given to :func:`validate`), which
        tells rows apart where labels repeat (frames joined without
        ``ignore_index``); :func:`read_messages` numbers the rows it validates in
        reading order, across files and chunks, and leaves it missing for a line
        no row was read from (a JSON Lines line that is not a JSON object).
    own_domains : dict of str to tuple of str
        Each tenant's own domains as validation used them to decide ``direction``
        (configured, or inferred from the mail and warned about); a tenant whose
        direction was given in full, without a configuration, is absent.
        :func:`build_graph` marks nodes internal by them.
    configured_own_domains : dict of str to tuple of str
        The same, for the tenants whose own domains were configured (not
        inferred): what the look-alike signals compare with beside the
        baselines' domains, on every path (a scorer knows only those).

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> m = validate(pd.DataFrame({
    ...     "tenant_id": ["acme", "acme"], "message_id": ["m1", "m2"],
    ...     "timestamp": ["2024-05-02T09:00:00Z", "2024-05-02T09:05:00Z"],
    ...     "sender": ["Ann Lee <ann@acme.com>", "bob@vendor.com"],
    ...     "recipients": ["bob@vendor.com; cy@acme.com", "ann@acme.com"]}),
    ...     tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    >>> m
    Messages(2 messages, 3 edges, 1 tenant, 0 rejects; 2024-05-02 09:00 .. 2024-05-02 09:05 UTC)
    >>> m.edges()[["message_id", "recipient", "direction"]]
      message_id       recipient direction
    0         m1  bob@vendor.com  outbound
    1         m1     cy@acme.com  outbound
    2         m2    ann@acme.com   inbound
    """

    __slots__ = ("frame", "rejects", "_edges", "own_domains", "_reject_tenant_column", "_inferred")

    def __init__(self, frame: pd.DataFrame, edges: pd.DataFrame, rejects: pd.DataFrame,
                 own_domains: Mapping[str, tuple[str, ...]] | None = None, *, reject_tenant_column: str = "tenant_id",
                 inferred: Iterable[str] = ()):
        self.frame = frame
        self._edges = edges
        self.rejects = rejects
        self.own_domains: dict[str, tuple[str, ...]] = dict(own_domains or {})
        self._reject_tenant_column = reject_tenant_column
        self._inferred = frozenset(inferred)

    @property
    def inferred_own(self) -> frozenset[str]:
        """Tenants whose :attr:`own_domains` validation inferred (none configured). (Messages pickled before it
        was kept: none.)"""
        return getattr(self, "_inferred", frozenset())

    @property
    def configured_own_domains(self) -> dict[str, tuple[str, ...]]:
        """:attr:`own_domains` of the tenants that configured them (see the class notes)."""
        return {t: d for t, d in self.own_domains.items() if t not in self.inferred_own}

    @property
    def reject_tenant_column(self) -> str:
        """The column of :attr:`rejects` that holds the tenant id: rejected rows keep the input's column names
        (``validate``'s ``columns=``). (Messages pickled before it was kept have ``tenant_id``.)"""
        return getattr(self, "_reject_tenant_column", "tenant_id")

    @reject_tenant_column.setter
    def reject_tenant_column(self, column: str) -> None:
        self._reject_tenant_column = column

    def edges(self, *, message_columns: Iterable[str] = ("message_id",)) -> pd.DataFrame:
        """One row per (message, recipient), recipients de-duplicated within a message.

        Parameters
        ----------
        message_columns : iterable of str, default ('message_id',)
            Columns of :attr:`frame` to repeat along each message's edges (for
            example ``("message_id", "label")``); ``()`` for the lean table. A
            column the edges hold already (``timestamp``, ``sender``) is not
            repeated: each name appears once.

        Returns
        -------
        pandas.DataFrame
            ``tenant_id``, ``timestamp``, ``sender``, ``sender_domain``,
            ``sender_key``, ``recipient``, ``recipient_domain`` (registrable),
            ``recipient_key``, ``recipient_type`` (to/cc/bcc, missing when the input
            did not say), ``direction``, ``message_index`` (the message's position in
            :attr:`frame`, int32 while the messages fit), then the requested message columns. Strings that repeat
            along edges (tenant, sender, recipient and their domains) are categoricals
            over Arrow-backed strings: 4 bytes a row instead of a copy of the string,
            and already factorised for grouping.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"],
        ...     "timestamp": [1714640400], "sender": ["a@x.com"], "to": ["b@t.com"],
        ...     "cc": ["B@T.com; c@t.com"]}), tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}])
        >>> m.edges()[["message_id", "recipient", "recipient_type"]]
          message_id recipient recipient_type
        0          1   b@t.com             to
        1          1   c@t.com             cc
        >>> list(m.edges(message_columns=())) == list(m.edges())[:-1]
        True
        >>> list(m.edges(message_columns=("message_id", "sender", "message_id"))) == list(m.edges())
        True
        """
        columns = list(dict.fromkeys(message_columns))
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise CommGraphError(f"message_columns names {missing}, which the messages do not have; columns "
                                 f"present: {list(self.frame.columns)}")
        columns = [c for c in columns if c not in self._edges.columns]  # (a name twice: a frame no file can hold)
        if not columns:
            return self._edges
        positions = self._edges["message_index"].to_numpy()
        extra = {c: self.frame[c].array.take(positions) for c in columns}
        return pd.concat([self._edges, pd.DataFrame(extra, index=self._edges.index)], axis=1)

    @property
    def tenants(self) -> list[str]:
        """The tenant ids present, sorted."""
        return sorted(self.frame["tenant_id"].unique().tolist())

    def __len__(self) -> int:
        return len(self.frame)

    def for_tenant(self, tenant_id: str) -> "Messages":
        """The messages of one tenant (rejects included), never another's.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["a", "b"], "message_id": ["1", "1"],
        ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["x@a.com", "y@b.com"],
        ...     "recipients": ["z@a.com", "w@b.com"], "direction": ["internal"] * 2}))
        >>> len(m.for_tenant("b")), m.for_tenant("b").tenants
        (1, ['b'])
        >>> m.for_tenant("c")
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.CommGraphError: tenant 'c' has no messages here; tenants present: ['a', 'b']
        """
        mask = (self.frame["tenant_id"] == tenant_id).to_numpy()
        if not mask.any():
            raise CommGraphError(f"tenant {tenant_id!r} has no messages here; tenants present: {self.tenants}")
        rejects = self.rejects[self.reject_tenants() == tenant_id]
        part = self.subset(mask)
        own = {tenant_id: self.own_domains[tenant_id]} if tenant_id in self.own_domains else {}
        return Messages(part.frame, part._edges, rejects, own, reject_tenant_column=self.reject_tenant_column,
                        inferred=self.inferred_own & set(own))

    def by_tenant(self) -> dict[str, "Messages"]:
        """:meth:`for_tenant` of every tenant present, split in one pass (sorted by tenant id).

        Splitting a batch of many tenants one :meth:`for_tenant` at a time compares every row's tenant once per
        tenant (a batch over 2,000 tenants: 2,000 passes); this groups the rows and edges once.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["b", "a", "b"], "message_id": ["1", "1", "2"],
        ...     "timestamp": ["2024-01-01T00:00Z"] * 3, "sender": ["x@b.com", "y@a.com", "x@b.com"],
        ...     "recipients": ["z@b.com", "w@a.com", "v@b.com; u@b.com"], "direction": ["internal"] * 3}))
        >>> parts = m.by_tenant()
        >>> list(parts), parts["b"].edges()["recipient"].tolist(), parts["b"].edges()["message_index"].tolist()
        (['a', 'b'], ['z@b.com', 'v@b.com', 'u@b.com'], [0, 1, 1])
        >>> all(parts[t].frame.equals(m.for_tenant(t).frame) for t in parts)
        True
        """
        codes, names = pd.factorize(self.frame["tenant_id"].astype(str).to_numpy(dtype=object), sort=True)
        order = np.argsort(codes, kind="stable")  # each tenant's messages, in their order
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        rank = np.empty(len(codes), np.int64)  # a message's position among its tenant's
        rank[order] = np.arange(len(codes)) - np.repeat(bounds[:-1], np.diff(bounds))
        edge_message = self._edges["message_index"].to_numpy()
        edge_codes = codes[edge_message]
        edge_order = np.argsort(edge_codes, kind="stable")
        edge_bounds = np.searchsorted(edge_codes[edge_order], np.arange(len(names) + 1))
        owners = self.reject_tenants()
        parts = {}
        for i, tenant_id in enumerate(names):
            rows = order[bounds[i]:bounds[i + 1]]
            edge_rows = edge_order[edge_bounds[i]:edge_bounds[i + 1]]
            edges = self._edges.iloc[edge_rows].reset_index(drop=True)
            edges["message_index"] = message_index(rank[edge_message[edge_rows]], len(rows))
            own = {tenant_id: self.own_domains[tenant_id]} if tenant_id in self.own_domains else {}
            parts[str(tenant_id)] = Messages(self.frame.iloc[rows], edges, self.rejects[owners == tenant_id], own,
                                             reject_tenant_column=self.reject_tenant_column,
                                             inferred=self.inferred_own & set(own))
        return parts

    def reject_tenants(self) -> np.ndarray:
        """The tenant of each rejected row (object array; None where it has none), as validation reads ids.

        Rejected rows keep their raw values under the input's column names; a tenant id counts stripped
        of surrounding white space (" b" is tenant "b"), and a float column's 7.0 is tenant "7".

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"org": [" b", None], "message_id": ["1", "2"],
        ...     "timestamp": ["soon", "2024-01-01T00:00Z"], "sender": ["x@b.com"] * 2,
        ...     "recipients": ["y@b.com"] * 2, "direction": ["internal"] * 2}), strict=False,
        ...     columns={"tenant_id": "org"})
        >>> m.reject_tenants().tolist()  # ' b' is tenant 'b'; the second row has no tenant
        ['b', None]
        """
        from ._validate import id_text

        column = self.reject_tenant_column
        if column not in self.rejects.columns:
            return np.full(len(self.rejects), None, dtype=object)
        return id_text(self.rejects[column])[0].to_numpy(dtype=object, na_value=None)

    def subset(self, mask: np.ndarray) -> "Messages":
        """The messages where ``mask`` (one bool per row of :attr:`frame`) is true, with their edges.

        Order is kept; the rejects stay as they are (they belong to the input, not to a message).

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["t", "t"], "message_id": ["1", "2"], "direction": ["internal"] * 2,
        ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com"] * 2,
        ...     "recipients": ["b@t.com", "b@t.com; c@t.com"]}))
        >>> m.subset(np.array([False, True])).edges()[["message_id", "recipient", "message_index"]]
          message_id recipient  message_index
        0          2   b@t.com              0
        1          2   c@t.com              0
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self.frame),):
            raise CommGraphError(f"Messages.subset needs one bool per message ({len(self.frame)}); got an array of "
                                 f"shape {mask.shape}")
        positions = np.flatnonzero(mask)
        edge_messages = self._edges["message_index"].to_numpy()
        edges = self._edges[mask[edge_messages]].copy()
        remap = np.full(len(self.frame), -1, dtype=np.int64)
        remap[positions] = np.arange(len(positions))
        edges["message_index"] = message_index(remap[edges["message_index"].to_numpy()], len(positions))
        return Messages(self.frame.iloc[positions], edges.reset_index(drop=True), self.rejects, self.own_domains,
                        reject_tenant_column=self.reject_tenant_column, inferred=self.inferred_own)

    def with_rejects(self, rejects: Iterable[pd.DataFrame]) -> "Messages":
        """The same messages with more rejected rows (found before validation, e.g. by a reader).

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "direction": ["internal"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"]}))
        >>> len(m.with_rejects([m.rejects]).rejects)
        0
        """
        return Messages(self.frame, self._edges, pd.concat([self.rejects, *rejects]), self.own_domains,
                        reject_tenant_column=self.reject_tenant_column, inferred=self.inferred_own)

    def _with_inferred(self, inferred: Iterable[str]) -> "Messages":
        """The same messages (frame, edges and rejects shared, not copied), with other tenants' own domains marked
        inferred; this object is left as it is."""
        return Messages(self.frame, self._edges, self.rejects, self.own_domains,
                        reject_tenant_column=self.reject_tenant_column, inferred=inferred)

    def _renumbered(self, positions: np.ndarray | None = None, offset: int = 0) -> "Messages":
        """The same messages, their rejects numbered among the rows of a larger input (:func:`renumber_rejects`)."""
        return Messages(self.frame, self._edges, renumber_rejects(self.rejects, positions, offset), self.own_domains,
                        reject_tenant_column=self.reject_tenant_column, inferred=self.inferred_own)

    @classmethod
    def concat(cls, parts: Iterable["Messages"], *, copies: bool = False) -> "Messages":
        """Join messages validated separately (for example chunk by chunk).

        A tenant's :attr:`own_domains` are those of every part that has them, joined.
        Rejected rows of a part numbered from 0 again (``reject_row``: each its
        own input) are numbered after those of the parts before, so that rows of
        different parts are never counted as one.

        Parameters
        ----------
        parts : iterable of Messages
        copies : bool, default False
            Whether parts may hold the same message (tenant and message id). By
            default that is refused: each copy would count in graphs and
            baselines, where validating the parts together keeps the first copy
            (and ``read_messages(..., chunksize=...)`` rejects a copy of a message
            kept from an earlier chunk). The live overlay, which merges the
            copies it observes, joins them with ``copies=True``.

        Raises
        ------
        SchemaError
            When parts hold the same message and ``copies`` is False: the rows
            of the later copies (labels of their parts' inputs) and their ids.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> one = validate(pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "direction": ["internal"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"]}))
        >>> two = validate(one.frame[["tenant_id", "direction", "timestamp", "sender"]].assign(
        ...     message_id="2", recipients="b@t.com; c@t.com"))
        >>> len(Messages.concat([one, two]).edges())
        3
        >>> bad = validate(pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "direction": ["internal"],
        ...     "timestamp": ["soon"], "sender": ["a@t.com"], "recipients": ["b@t.com"]}), strict=False)
        >>> both = Messages.concat([bad, bad])
        >>> both.rejects.index.tolist(), both.rejects["reject_row"].tolist(), both.summary()["rejected_rows"]
        ([0, 0], [0, 1], 2)
        >>> Messages.concat([one, one])
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.SchemaError: mail metadata breaks the message contract (1 problem):
          - column 'message_id': 1 row duplicate_message_id (rows 0; values '1'); a message an earlier part ...
        """
        parts = list(parts)
        if not parts:
            raise CommGraphError("Messages.concat needs at least one part")
        if not copies and len(parts) > 1:
            _refuse_copies(parts)
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        edges = []
        for offset, part in zip(offsets, parts):
            e = part._edges.copy()
            e["message_index"] = message_index(e["message_index"].to_numpy(np.int64) + offset,
                                               sum(len(p) for p in parts))
            edges.append(e)
        joined = pd.concat(edges, ignore_index=True)
        for column, dtype in parts[0]._edges.dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype) and not isinstance(joined[column].dtype, pd.CategoricalDtype):
                # Each part has its own categories: keep the column dictionary-encoded.
                joined[column] = union_categoricals([e[column] for e in edges])
        own: dict[str, tuple[str, ...]] = {}
        for part in parts:
            for tenant, domains in part.own_domains.items():
                own[tenant] = tuple(dict.fromkeys(own.get(tenant, ()) + tuple(domains)))
        # A tenant inferred in any part (a chunked read infers in its first chunk, configures the rest) is inferred.
        return cls(pd.concat([p.frame for p in parts]), joined, _numbered_apart([p.rejects for p in parts]), own,
                   reject_tenant_column=parts[0].reject_tenant_column,
                   inferred=frozenset().union(*(p.inferred_own for p in parts)))

    def summary(self) -> dict:
        """Counts for reports: messages, edges, tenants, rejects by reason.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> validate(pd.DataFrame({"tenant_id": ["t", "t"], "message_id": ["1", "1"], "direction": ["internal"] * 2,
        ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com"] * 2, "recipients": ["b@t.com"] * 2}),
        ...     strict=False).summary()
        {'messages': 1, 'edges': 1, 'tenants': 1, 'rejected_rows': 1, 'repeated_recipients_merged': 0, 'rejects_by_reason': {'duplicate_message_id': 1}}
        """
        rows_rejected = self.rejects[self.rejects["reject_action"] == "row_rejected"]
        return {
            "messages": len(self.frame),
            "edges": len(self._edges),
            "tenants": int(self.frame["tenant_id"].nunique()),
            "rejected_rows": _distinct_rows(rows_rejected),
            "repeated_recipients_merged": int(self.frame["n_repeated_recipients"].sum()),
            "rejects_by_reason": {str(k): int(v) for k, v in
                                  self.rejects["reject_reason"].value_counts().sort_index().items()},
        }

    def _span(self) -> str:
        if not len(self.frame):
            return "empty"
        ts = self.frame["timestamp"]
        return f"{ts.min():%Y-%m-%d %H:%M} .. {ts.max():%Y-%m-%d %H:%M} UTC"

    def _sizes(self, s: dict) -> str:
        """``1 message, 2 edges, 1 tenant, 0 rejects``: the counts of :meth:`summary` ``s``, each singular at 1."""
        return (f"{plural(s['messages'], 'message')}, {plural(s['edges'], 'edge')}, "
                f"{plural(s['tenants'], 'tenant')}, {plural(len(self.rejects), 'reject')}")

    def __repr__(self) -> str:
        return f"Messages({self._sizes(self.summary())}; {self._span()})"

    def _repr_html_(self) -> str:
        """The notebook view: the counts (as :meth:`__repr__` words them), messages by tenant, rejects by reason.

        Examples
        --------
        >>> from commgraph.graph import validate
        >>> m = validate(pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"], "direction": ["internal"],
        ...     "timestamp": ["2024-05-01T09:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"]}))
        >>> m._repr_html_()[:66]
        '<div><b>Messages</b>: 1 message, 1 edge, 1 tenant, 0 rejects (2024'
        """
        s = self.summary()
        by_tenant = self.frame.groupby("tenant_id", observed=True).agg(
            messages=("message_id", "size"), first=("timestamp", "min"), last=("timestamp", "max"))
        reasons = "".join(f"<li>{html.escape(k)}: {v:,}</li>" for k, v in s["rejects_by_reason"].items())
        return (f"<div><b>Messages</b>: {self._sizes(s)} ({html.escape(self._span())})"
                f"{by_tenant.head(20).to_html()}"
                + (f"<p>Rejects by reason:</p><ul>{reasons}</ul>" if reasons else "") + "</div>")


def _numbered_apart(rejects: list[pd.DataFrame]) -> pd.DataFrame:
    """The rejects of several parts joined, a part whose ``reject_row`` numbers meet those of the parts before
    (each numbered in its own input) numbered after them; parts of one input, numbered in it, keep theirs."""
    joined, taken = [], np.zeros(0, dtype=np.int64)
    for part in rejects:
        if "reject_row" in part and part["reject_row"].notna().any():
            rows = part["reject_row"].dropna().to_numpy(dtype=np.int64)
            if len(taken) and np.isin(rows, taken).any():
                part = renumber_rejects(part, offset=int(taken.max()) + 1)
                rows = part["reject_row"].dropna().to_numpy(dtype=np.int64)
            taken = np.concatenate([taken, rows])
        joined.append(part)
    return pd.concat(joined)


def _refuse_copies(parts: list[Messages]) -> None:
    """Raise a SchemaError naming the messages a part holds that an earlier part holds too."""
    from ._readers import copies_across

    problems = []
    for part, again in zip(parts, copies_across([p.frame for p in parts])):
        if again.any():
            frame = part.frame[again]
            problems.append(Problem(
                "message_id", ReasonCode.DUPLICATE_MESSAGE_ID, rows=frame.index.tolist(),
                values=frame["message_id"].tolist(), detail="a message an earlier part holds too",
                files=frame["source_file"].astype(str).tolist() if "source_file" in frame.columns else (),
                fix="each copy would count (validated together, the first copy is kept): read the parts with "
                    "read_messages(..., chunksize=...), which rejects a copy of a message kept from an earlier "
                    "chunk, or validate them together, or leave the copies out of the later parts (subset)"))
    if problems:
        raise SchemaError(problems)
