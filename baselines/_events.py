"""Validated messages to per-tenant event rows: integer keys and small codes, one row per edge.

An *event row* is one (message, recipient) edge reduced to what baselines need:
the time, five uint64 keys, and codes for direction, label and authentication.
Two kinds of rows share the layout:

* **message events** (``is_message = 1``): the message happened, and its label
  if that was known before ``as_of``;
* **label events** (``is_message = 0``): a label that became known after an
  earlier snapshot, for a message that snapshot had already counted, or one
  withdrawn since (no label, ``labeled_at`` since). They change label counts only.

``head`` marks one row per message, so message-level statistics (sender, domain,
tenant) sum over heads and edge-level ones (pair, recipient) over all rows.
``domain_head`` (:data:`DOMAIN_HEAD`, not stored: only the aggregation of fresh
rows reads it) marks one outbound row per (message, recipient domain), so the
tenant's mail to a domain counts messages, as its mail to an address does.

Strings are factorised once for the whole input (edge columns are already
categoricals) and keys are taken by code, so each distinct string is hashed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from commgraph.graph import AUTH_RESULTS, DIRECTIONS, ConfigError, Messages, stable_key
from commgraph.graph._keys import each_key

from ._aggregate import Grouping

__all__ = ["EVENT_COLUMNS", "TenantEvents", "tenant_events", "INBOUND", "OUTBOUND", "INTERNAL", "PASS",
           "FAILS", "FAILED", "NO_LABEL", "DAY_NS", "HOUR_NS", "DOMAIN_HEAD", "MESSAGE_KEY", "domain_heads"]

INBOUND, OUTBOUND, INTERNAL = (DIRECTIONS.index(d) for d in ("inbound", "outbound", "internal"))
PASS = AUTH_RESULTS.index("pass")
#: Results counted as a failure: a hard or soft fail, or a permanent error.
FAILS = tuple(AUTH_RESULTS.index(r) for r in ("fail", "softfail", "permerror"))
#: Whether an authentication code (-1: none) is a failure, indexed by the code plus one (a gather, not ``np.isin``).
FAILED = np.isin(np.arange(-1, len(AUTH_RESULTS)), FAILS)
#: Label codes follow commgraph.graph.LABELS (0 safe, 1 attack, 2 spam); -1: none known.
NO_LABEL = -1
DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9

#: The extracted rows' flag of one outbound row per (message, recipient domain); not part of the stored layout.
DOMAIN_HEAD = "domain_head"
#: The extracted rows' key of their message (its id's key mixed with its sender and time) where its label is
#: known or was withdrawn (a label event without a label), 0 elsewhere: how a refresh tells a changed label
#: from a first one (see TenantState.labelled); not part of the stored layout.
MESSAGE_KEY = "message_key"

#: Columns of an event table, with dtypes (the on-disk layout of the state).
EVENT_COLUMNS: dict[str, str] = {
    "timestamp": "int64", "sender_key": "uint64", "sender_domain_key": "uint64", "recipient_key": "uint64",
    "recipient_domain_key": "uint64", "display_name_key": "uint64", "direction": "int8", "label": "int8",
    "head": "bool", "is_message": "bool", "n_recipients": "int32", "spf": "int8", "dkim": "int8", "dmarc": "int8",
}


@dataclass
class TenantEvents:
    """The event rows of one tenant, the strings behind their keys, and an input fingerprint."""

    tenant_id: str
    rows: dict[str, np.ndarray]
    names: dict[str, Any]  # {"key": uint64 ndarray, "value": pyarrow string array}; empty in privacy mode
    fingerprint: int  # sum mod 2**64 of per-event hashes: order-free and mergeable by addition
    groupings: dict[str, Grouping] | None = None  # per key column, the rows' grouping (rows in time order)


def _codes(series: pd.Series) -> np.ndarray:
    return series.array.codes.astype(np.int8) if isinstance(series.dtype, pd.CategoricalDtype) \
        else np.full(len(series), -1, np.int8)


def _ns(series: pd.Series) -> np.ndarray:
    # Missing times come out as NaT, the smallest int64 (no copy for a tz-aware column).
    return series.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """The first row of each code, for codes numbered in order of first appearance (as ``pd.factorize`` gives)."""
    if not len(codes):
        return np.zeros(0, np.int64)
    running = np.maximum.accumulate(codes)
    new = np.empty(len(codes), bool)
    new[0] = True
    np.greater(running[1:], running[:-1], out=new[1:])
    return np.flatnonzero(new)


@dataclass
class _Grouped:
    """A key column's rows grouped per tenant (tenants stacked, in order): each row's key and its group among
    its tenant's, and per tenant the sorted keys of its groups (None where two of its strings share a key:
    it is then grouped by the key itself) and the distinct keys present with their strings."""

    row_keys: np.ndarray
    codes: np.ndarray
    tenant_keys: list[np.ndarray | None]
    names: list[tuple[np.ndarray, pa.Array]]


def _grouped(local: np.ndarray, present_tenant: np.ndarray, present_keys: np.ndarray, strings: pa.Array,
             n_tenants: int, row_keys: np.ndarray | None = None) -> _Grouped:
    """The rows' grouping by key within each tenant, from codes numbered in order of first appearance over
    tenants stacked in order (``present_tenant``: the tenant of each code): one small sort of (tenant, key).
    ``row_keys``: each row's key, when known (else the key of its code)."""
    missing = strings.is_null().to_numpy(zero_copy_only=False) if strings.null_count else None
    if missing is not None:
        present_keys = np.where(missing, np.uint64(0), present_keys)  # missing values: key 0
        row_keys = None
    if row_keys is None:
        row_keys = present_keys[local]
    # By key (numpy's quicksort), then by tenant (a stable radix pass over small tenant numbers): the order of
    # (tenant, key), in a third of lexsort's time. Codes of one key in one tenant (two strings, one key) may
    # come in any order: such a tenant is grouped by the key itself, and its codes are never read.
    order = np.argsort(present_keys)
    if n_tenants > 2**15:
        order = np.lexsort((present_keys, present_tenant))
    elif n_tenants > 1:
        order = order[np.argsort(present_tenant[order].astype(np.int16), kind="stable")]
    sorted_keys = present_keys[order]
    blocks = np.searchsorted(present_tenant, np.arange(n_tenants + 1))  # each tenant's codes, sorted or not
    same = np.zeros(len(order), bool)
    if len(order) > 1:
        # Two strings with one 64-bit key (or one key for two codes) in a tenant: it is grouped by the key itself.
        np.equal(sorted_keys[1:], sorted_keys[:-1], out=same[1:])
        if n_tenants > 1:
            same[1:] &= present_tenant[order][1:] == present_tenant[order][:-1]
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    codes = (rank - blocks[present_tenant])[local]
    keep = ~missing if missing is not None else None
    tenant_keys, names = [], []
    for lo, hi in zip(blocks[:-1], blocks[1:]):
        tenant_keys.append(None if same[lo + 1:hi].any() else sorted_keys[lo:hi])
        if keep is None:
            names.append((present_keys[lo:hi], strings.slice(lo, hi - lo)))
        else:
            names.append((present_keys[lo:hi][keep[lo:hi]], strings.slice(lo, hi - lo).filter(pa.array(keep[lo:hi]))))
    return _Grouped(row_keys, codes, tenant_keys, names)


class _Column:
    """One string column of the input: per tenant, the keys of its rows, their grouping and the strings.

    Edge columns are categoricals (codes are a view, no work up front); the
    display name is a message-level string column, factorised per tenant. Keys
    the input already carries (sender, recipient) are reused; the others are
    hashed per tenant for the strings it uses only, so the per-row work runs in
    the worker processes. Each column is factorised once per tenant and that
    grouping serves every aggregate keyed by it.
    """

    def __init__(self, series: pd.Series, keys: np.ndarray | None = None):
        self.series = series
        self.categorical = isinstance(series.dtype, pd.CategoricalDtype)
        self.codes = series.array.codes if self.categorical else None
        self.keys = keys

    def _category_strings(self, present: np.ndarray) -> pa.Array:
        """The strings of some category codes (null for -1): only these are converted, not every category."""
        categories = self.series.dtype.categories  # (the .cat accessor costs more than the take below)
        if isinstance(categories.array, pd.arrays.ArrowStringArray):
            # Arrow-backed categories (the default strings): an Arrow take, no pandas objects per call.
            whole = pa.array(categories.array)
            if isinstance(whole, pa.ChunkedArray):
                whole = whole.combine_chunks()
            strings = whole.take(pa.array(np.maximum(present, 0)))
        else:
            strings = pa.array(pd.Series(categories.take(np.maximum(present, 0)), dtype="str").array)
            if isinstance(strings, pa.ChunkedArray):
                strings = strings.combine_chunks()
        if strings.type != pa.string():
            strings = strings.cast(pa.string())
        if (present < 0).any():
            strings = pc.if_else(pa.array(present >= 0), strings, pa.scalar(None, pa.string()))
        return strings

    def group(self, rows: np.ndarray | slice, tenant: np.ndarray | None, secrets: list[bytes | None]
              ) -> _Grouped:
        """The rows' keys (0 where missing) and grouping within each tenant, with the distinct keys present and
        their strings. ``tenant``: each row's tenant (0, 1, ... in order, rows grouped by it; None: one
        tenant); ``secrets``: each tenant's (None: keys as the input carries them or plain hashes)."""
        n_tenants = len(secrets)
        if self.categorical:
            # Each tenant's categories, in order of first appearance.
            if tenant is None:
                local, present = pd.factorize(self.codes[rows])
                present_tenant = np.zeros(len(present), np.int64)
            else:
                width = len(self.series.dtype.categories) + 1
                local, present = pd.factorize(self.codes[rows].astype(np.int64) + 1 + tenant * width)
                present_tenant, present = np.divmod(present, width)
                present = present - 1
            strings = self._category_strings(present)
        else:
            values = self.series.array[rows]
            local, uniques = pd.factorize(values, use_na_sentinel=True)
            # Arrow-backed strings (the default) are already an Arrow array: no Series around them.
            strings = pa.array(uniques if isinstance(uniques, pd.arrays.ArrowStringArray) else
                               pd.Series(uniques, dtype="str").array)
            if isinstance(strings, pa.ChunkedArray):
                strings = strings.combine_chunks()
            if strings.type != pa.string():
                strings = strings.cast(pa.string())
            if (local < 0).any() or tenant is not None:  # missing values: one more group (key 0, no string)
                strings = pa.concat_arrays([strings, pa.nulls(1, pa.string())])
                local = np.where(local < 0, len(uniques), local)
            if tenant is None:
                present_tenant = np.zeros(len(strings), np.int64)
            else:  # each tenant's strings, in order of first appearance
                width = len(uniques) + 1
                local, present = pd.factorize(local + tenant * width)
                present_tenant, present = np.divmod(present, width)
                strings = strings.take(pa.array(present))
        local = local.astype(np.int64, copy=False)
        row_keys = None
        if secrets[0] is None and self.keys is not None:  # (one privacy mode for every tenant)
            row_keys = self.keys[rows]
            present_keys = row_keys[_first_rows(local)]
        else:
            # The strings are distinct per tenant already: hash each once, with its tenant's secret.
            blocks = np.searchsorted(present_tenant, np.arange(n_tenants + 1))
            present_keys = np.fromiter((stable_key(v or "", secret=secret) for lo, hi, secret in
                                        zip(blocks[:-1], blocks[1:], secrets)
                                        for v in strings.slice(lo, hi - lo).to_pylist()),
                                       dtype=np.uint64, count=len(strings))
        return _grouped(local, present_tenant, present_keys, strings, n_tenants, row_keys)


def domain_heads(message: np.ndarray, outbound: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """One outbound row per (message, recipient domain): a message counts once towards a domain it wrote
    to, however many of its recipients are there.

    ``message`` and ``domain`` are non-negative int codes per row, ``outbound`` a
    mask of the outbound rows. The first row of each pair is flagged.

    Examples
    --------
    >>> domain_heads(np.array([0, 0, 0, 1]), np.array([True, True, True, False]), np.array([5, 5, 2, 5])).tolist()
    [True, False, True, False]
    """
    out = np.flatnonzero(outbound)
    flags = np.zeros(len(outbound), bool)
    if len(out):
        width = np.int64(domain[out].max()) + 1
        key = message[out].astype(np.int64) * width + domain[out]
        # A stable sort of the keys (mail comes in message order: nearly sorted runs, which timsort merges in
        # about linear time) puts each pair's rows side by side, its first row first: half the time of hashing.
        order = np.argsort(key, kind="stable")
        key = key[order]
        first = np.ones(len(key), bool)
        np.not_equal(key[1:], key[:-1], out=first[1:])
        flags[out[np.compress(first, order)]] = True
    return flags


def _rows_at(rows: np.ndarray | slice, idx: np.ndarray) -> np.ndarray:
    """Input positions of some of a tenant's rows (``rows`` a slice of the input or positions)."""
    return idx + rows.start if isinstance(rows, slice) else rows[idx]


class EventExtractor:
    """Views of the whole input up front, then the rows of one tenant at a time.

    Built once per input in the parent process; every per-row step runs in
    :meth:`extract`, so with several (forked) worker processes each does the
    work of its own tenants from the same memory.
    """

    def __init__(self, messages: Messages, *, as_of: pd.Timestamp, since: pd.Timestamp | None = None,
                 secrets: Mapping[str, bytes] | None = None, privacy: bool = False):
        if not isinstance(messages, Messages):
            raise ConfigError(f"baselines are built from validated Messages; got {type(messages).__name__}. "
                              "Call commgraph.graph.validate(frame, tenants=...) first.")
        if privacy and not secrets:
            raise ConfigError("privacy mode needs a secret per tenant: pass secrets={tenant_id: bytes}")
        self.privacy, self.secrets = privacy, secrets
        frame, edges = messages.frame, messages.edges(message_columns=())  # no per-edge message ids
        self.as_of_ns = pd.Timestamp(as_of).value
        self.since_ns = None if since is None else pd.Timestamp(since).value
        self.mi = edges["message_index"].to_numpy()
        self.ts = _ns(edges["timestamp"])
        self.direction = _codes(edges["direction"])
        # Message-level columns: one value per message, taken along edges per tenant.
        self.label = _codes(frame["label"])
        self.message_id = frame["message_id"]
        self.labeled_at = _ns(frame["labeled_at"]) if "labeled_at" in frame else None
        self.n_recipients = frame["n_recipients"].to_numpy()
        self.auth = {a: _codes(frame[a]) if a in frame else None for a in ("spf", "dkim", "dmarc")}
        tenant_column = edges["tenant_id"]  # (each column read costs a Series: read it once)
        if isinstance(tenant_column.dtype, pd.CategoricalDtype):
            tenant_codes, categories = tenant_column.array.codes, tenant_column.dtype.categories
            present = np.bincount(tenant_codes, minlength=len(categories)) > 0
            if not present.all():
                # Categories without rows (kept by a subset such as Messages.for_tenant)
                # are not tenants of this input: no snapshot, no secret asked for them.
                tenant_codes = (np.cumsum(present) - 1)[tenant_codes]
                categories = categories[present]
            self.tenant_names = [str(t) for t in categories]
        else:
            tenant_codes, names = pd.factorize(tenant_column)
            self.tenant_names = [str(t) for t in names]
        self.columns = {
            "sender_key": _Column(edges["sender"], edges["sender_key"].to_numpy()),
            "recipient_key": _Column(edges["recipient"], edges["recipient_key"].to_numpy()),
            "sender_domain_key": _Column(edges["sender_domain"]),
            "recipient_domain_key": _Column(edges["recipient_domain"]),
            "display_name_key": _Column(frame["sender_display_name"]) if "sender_display_name" in frame else None,
        }
        counts = np.bincount(tenant_codes, minlength=len(self.tenant_names)) if len(tenant_codes) else \
            np.zeros(len(self.tenant_names), np.int64)
        self.bounds = np.concatenate([[0], np.cumsum(counts)])
        # Input grouped by tenant (as readers and the generator give it): each
        # tenant's rows are one slice, and every per-row read is a view.
        grouped = len(tenant_codes) < 2 or bool((tenant_codes[1:] >= tenant_codes[:-1]).all())
        # Stable: rows of a tenant keep their input order (edges of a message together).
        self.order = None if grouped else np.argsort(tenant_codes, kind="stable")

    def size(self, tenant_id: str) -> int:
        """Edge rows of a tenant (for balancing work across processes)."""
        t = self.tenant_names.index(tenant_id)
        return int(self.bounds[t + 1] - self.bounds[t])

    def extract(self, tenant_id: str) -> TenantEvents:
        """The event rows of one tenant, in time order; never reads another tenant's rows."""
        return self.extract_many([tenant_id])[tenant_id]

    def extract_many(self, tenant_ids: list[str]) -> dict[str, TenantEvents]:
        """The event rows of each of several tenants, each as :meth:`extract` gives it, in one pass.

        The tenants' rows are stacked, the tenant is the leading key of every
        sort and grouping (codes, keys and strings are numbered within each
        tenant), and the result is split at the tenant boundaries: the fixed
        cost of the many small steps is paid once, and tenants never mix.
        """
        index = [self.tenant_names.index(t) for t in tenant_ids]
        n_tenants = len(index)
        if not n_tenants:
            return {}
        spans = [(int(self.bounds[t]), int(self.bounds[t + 1])) for t in index]
        if n_tenants == 1:  # a view
            rows: np.ndarray | slice = slice(*spans[0]) if self.order is None else self.order[slice(*spans[0])]
        else:
            rows = np.concatenate([np.arange(lo, hi) if self.order is None else self.order[lo:hi]
                                   for lo, hi in spans] or [np.zeros(0, np.int64)])
        # Each row's tenant (0, 1, ...; None for one tenant: nothing to tell apart).
        tenant = np.repeat(np.arange(n_tenants), [hi - lo for lo, hi in spans]) if n_tenants > 1 else None
        mi, ts = self.mi[rows], self.ts[rows]
        label = self.label[mi]
        no_time = np.iinfo(np.int64).min
        labeled_at = self.labeled_at[mi] if self.labeled_at is not None else np.full(len(mi), no_time)
        label_time = np.where(labeled_at == no_time, ts, labeled_at)  # NaT: known when sent
        known = (label >= 0) & (label_time < self.as_of_ns)
        if self.since_ns is None:
            is_message = ts < self.as_of_ns
            keep = is_message
            withdrawn = np.zeros(len(mi), bool)
        else:
            is_message = (ts >= self.since_ns) & (ts < self.as_of_ns)
            relabel = (ts < self.since_ns) & known & (label_time >= self.since_ns)
            # A label withdrawn since (no label, labelled then): a refresh retracts what it counted.
            withdrawn = (ts < self.since_ns) & (label < 0) & (labeled_at >= self.since_ns) & (
                labeled_at < self.as_of_ns)
            keep = is_message | relabel | withdrawn
        # One order for every row: by tenant, then time, the edges of a message together.
        order = None if keep.all() else np.flatnonzero(keep)
        if len(mi) > 1:
            kept_tenant = tenant if order is None or tenant is None else tenant[order]
            kept_mi = mi if order is None else mi[order]
            if not _ascending(kept_mi, kept_tenant):  # edges of a message apart: bring them together
                by_message = _stable_order(kept_mi, kept_tenant)
                order = by_message if order is None else order[by_message]
            kept_ts = ts if order is None else ts[order]
            if not _ascending(kept_ts, kept_tenant):  # (the tenants' boundaries stay where they were)
                # A message's edges share one time, so a stable sort keeps them together.
                by_time = _stable_order(kept_ts, kept_tenant)
                order = by_time if order is None else order[by_time]
        if order is not None:
            rows = _rows_at(rows, order)
            mi, ts, label, known, is_message = mi[order], ts[order], label[order], known[order], is_message[order]
            withdrawn = withdrawn[order]
            tenant = None if tenant is None else tenant[order]
        n = len(mi)
        first = np.ones(n, bool)  # the first row of each message
        if n > 1:
            np.not_equal(mi[1:], mi[:-1], out=first[1:])
        heads = np.flatnonzero(first)
        run = np.cumsum(first) - 1  # each row's message
        head_rows = _rows_at(rows, heads)
        ev = {"timestamp": ts, "direction": self.direction[rows],
              "label": np.where(known, label, NO_LABEL).astype(np.int8),
              "is_message": is_message, "n_recipients": self.n_recipients[mi].astype(np.int32)}
        for a, codes in self.auth.items():
            ev[a] = codes[mi] if codes is not None else np.full(n, -1, np.int8)
        secrets: list[bytes | None] = [None] * n_tenants
        if self.privacy:
            for i, tenant_id in enumerate(tenant_ids):
                if tenant_id not in self.secrets:
                    raise ConfigError(f"privacy mode needs a secret for tenant {tenant_id!r}; "
                                      f"secrets were given for {sorted(self.secrets)[:5]}")
                secrets[i] = self.secrets[tenant_id]
        bounds = [0, n] if tenant is None else np.searchsorted(tenant, np.arange(n_tenants + 1))  # each tenant's rows
        names_key: list[list[np.ndarray]] = [[] for _ in tenant_ids]
        names_value: list[list[pa.Array]] = [[] for _ in tenant_ids]
        groupings: list[dict[str, Grouping]] = [{} for _ in tenant_ids]
        for column, source in self.columns.items():
            if source is None:
                ev[column] = np.zeros(n, np.uint64)
                continue
            # Message-level strings are factorised over one row per message, then spread along its edges.
            per_message = column in ("sender_key", "sender_domain_key", "display_name_key")
            where = mi[heads] if column == "display_name_key" else head_rows if per_message else rows
            grouped = source.group(where, tenant if tenant is None or not per_message else tenant[heads], secrets)
            keys, codes = grouped.row_keys, grouped.codes
            if per_message:
                keys, codes = keys[run], codes[run]
            ev[column] = keys
            for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                sorted_keys = grouped.tenant_keys[i]
                groupings[i][column] = Grouping.of({column: keys[lo:hi]}) if sorted_keys is None else \
                    Grouping({column: sorted_keys}, codes[lo:hi])
                if not self.privacy:
                    names_key[i].append(grouped.names[i][0])
                    names_value[i].append(grouped.names[i][1])
        # The head of a message (the row its message-level statistics count on)
        # is its edge to the smallest recipient key, not its first edge: the
        # stored rows then do not depend on the order of a message's recipients.
        head = np.zeros(n, bool)
        if n:
            recipient = ev["recipient_key"]
            lowest = np.flatnonzero(recipient == np.minimum.reduceat(recipient, heads)[run])
            once = np.ones(len(lowest), bool)  # one head per message, even if two edges shared a key
            np.not_equal(run[lowest][1:], run[lowest][:-1], out=once[1:])
            head[lowest[once]] = True
        ev["head"] = head
        # A labelled message's ledger key: its id's key mixed with its sender and time, so that an id
        # reused by another message (ids are whatever the sender wrote) names another entry.
        ids = self._message_keys(mi, (ev["label"] >= 0) | withdrawn, tenant, secrets)
        with np.errstate(over="ignore"):
            ev[MESSAGE_KEY] = np.where(ids != 0, mix64(ids, mix64(ev["sender_key"], ts.view(np.uint64))),
                                       np.uint64(0))
        # (a message is one tenant's: the domain codes of each tenant need not differ from another's)
        domain_codes = groupings[0]["recipient_domain_key"].codes if n_tenants == 1 else np.concatenate(
            [g["recipient_domain_key"].codes for g in groupings] or [np.zeros(0, np.int64)])
        ev[DOMAIN_HEAD] = domain_heads(run, ev["direction"] == OUTBOUND, domain_codes)
        # The fingerprint sums a hash of each message's content, every column a
        # snapshot counts (each edge: time, sender, recipient, display name,
        # direction, recipient count, authentication results), and of each label
        # known: order-free, and a refresh adds to it exactly what it counts.
        with np.errstate(over="ignore"):
            small = (ev["direction"].astype(np.uint64) & np.uint64(0xFF)) | (
                (ev["spf"].astype(np.uint64) & np.uint64(0xFF)) << np.uint64(8)) | (
                (ev["dkim"].astype(np.uint64) & np.uint64(0xFF)) << np.uint64(16)) | (
                (ev["dmarc"].astype(np.uint64) & np.uint64(0xFF)) << np.uint64(24)) | (
                ev["n_recipients"].astype(np.uint64) << np.uint64(32))
            edge = mix64(mix64(mix64(mix64(ev["sender_key"], ts.view(np.uint64)), ev["recipient_key"]),
                               ev["display_name_key"]), small)
            edge = np.where(is_message, edge, np.uint64(0))
            h = mix64(ev["sender_key"][heads], ts[heads].view(np.uint64))
            head_label = ev["label"][heads]
            label = np.where(head_label >= 0, mix64(h, head_label.astype(np.uint64) + np.uint64(1)), np.uint64(0))
            # Each tenant's sums, modulo 2**64: differences of the running sums.
            running = np.concatenate([np.zeros(1, np.uint64), np.cumsum(edge, dtype=np.uint64)])
            labels = np.concatenate([np.zeros(1, np.uint64), np.cumsum(label, dtype=np.uint64)])
            head_bounds = np.searchsorted(heads, bounds)
            fingerprints = ((running[bounds[1:]] - running[bounds[:-1]])
                            + (labels[head_bounds[1:]] - labels[head_bounds[:-1]])).tolist()
        out = {}
        for i, tenant_id in enumerate(tenant_ids):
            lo, hi = bounds[i], bounds[i + 1]
            names = {"key": np.concatenate(names_key[i]) if names_key[i] else np.zeros(0, np.uint64),
                     "value": pa.concat_arrays(names_value[i]) if names_value[i] else pa.array([], pa.string())}
            out[tenant_id] = TenantEvents(tenant_id, {c: v[lo:hi] for c, v in ev.items()}, names, int(fingerprints[i]),
                                          groupings[i])
        return out

    def _message_keys(self, mi: np.ndarray, labelled: np.ndarray, tenant: np.ndarray | None,
                      secrets: list[bytes | None]) -> np.ndarray:
        """Each row's key of its message's id where its label is known, else 0 (keyed with the tenant's secret
        in privacy mode): each labelled message's id hashed once."""
        keys = np.zeros(len(mi), np.uint64)
        at = np.flatnonzero(labelled)
        if not len(at):
            return keys
        messages, first, inverse = np.unique(mi[at], return_index=True, return_inverse=True)
        ids = self.message_id.iloc[messages].to_numpy(dtype=object)
        owner = np.zeros(len(messages), np.int64) if tenant is None else tenant[at][first]
        hashed = np.zeros(len(messages), np.uint64)
        for i in np.unique(owner).tolist():  # (one secret per tenant)
            mine = owner == i
            hashed[mine] = each_key(ids[mine], secret=secrets[i])  # (one id a message)
        keys[at] = hashed[inverse.ravel()]
        return keys


def _ascending(values: np.ndarray, tenant: np.ndarray | None) -> bool:
    """Whether ``values`` never decrease within a tenant (``tenant``: each row's, grouped; None: one tenant)."""
    up = values[1:] >= values[:-1]
    return bool(up.all() if tenant is None else (up | (tenant[1:] != tenant[:-1])).all())


def _stable_order(values: np.ndarray, tenant: np.ndarray | None) -> np.ndarray:
    """Rows by tenant, then ``values``, ties in their order (one tenant: a stable argsort)."""
    return np.argsort(values, kind="stable") if tenant is None else np.lexsort((values, tenant))


def tenant_events(messages: Messages, *, as_of: pd.Timestamp, since: pd.Timestamp | None = None,
                  secrets: Mapping[str, bytes] | None = None, privacy: bool = False,
                  tenants: list[str] | None = None) -> dict[str, TenantEvents]:
    """Event rows per tenant for the period ``[since, as_of)`` (``since`` None: everything before ``as_of``).

    Rows before ``since`` become label events when their label became known in
    ``[since, as_of)``; labels known at or after ``as_of`` are left out.
    """
    extractor = EventExtractor(messages, as_of=as_of, since=since, secrets=secrets, privacy=privacy)
    wanted = extractor.tenant_names if tenants is None else [t for t in extractor.tenant_names if t in set(tenants)]
    return extractor.extract_many(wanted)


def mix64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A stable 64-bit hash of two uint64 columns (splitmix64 finalizer); ``mix64(a, b) != mix64(b, a)``."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = a ^ (b * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def empty_events() -> dict[str, np.ndarray]:
    """An event table with no rows (as extracted: with the :data:`DOMAIN_HEAD` flags)."""
    return {c: np.zeros(0, dtype=d) for c, d in {**EVENT_COLUMNS, DOMAIN_HEAD: "bool"}.items()}


def concat_events(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several event tables, one table."""
    parts = [p for p in parts if len(p["timestamp"])] or [empty_events()]
    if len(parts) == 1:  # nothing to join: the columns themselves
        return {c: np.asarray(parts[0][c]).astype(d, copy=False) for c, d in EVENT_COLUMNS.items()}
    return {c: np.concatenate([p[c] for p in parts]).astype(d, copy=False) for c, d in EVENT_COLUMNS.items()}


def time_order(rows: Mapping[str, np.ndarray]) -> np.ndarray:
    """Rows by time (stable). Enough for exact, order-free aggregates: rows at the same
    instant add the same decayed weight, so their order cannot change a float sum.
    Mail arrives nearly in time order, which the stable sort (timsort) handles in
    linear time, where sorting by random 64-bit keys costs ~0.5 us a row."""
    return np.argsort(rows["timestamp"], kind="stable")


def canonical_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several event tables, one table in :func:`canonical_order`.

    A state's message rows are chunks of successive periods (the stored rows, in canonical order already, then
    each refresh's): when every chunk's instants come before the next one's, the order of the whole is each
    chunk's in turn, and a chunk in order already is joined as it is, never gathered.
    """
    parts = [p for p in parts if len(p["timestamp"])]
    if not all(a["timestamp"].max() < b["timestamp"].min() for a, b in zip(parts, parts[1:])):
        parts = [concat_events(parts)]  # (chunks whose periods overlap: ordered as one)
    return concat_events([_in_canonical(p) for p in parts])


def _in_canonical(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows in :func:`canonical_order`: as they are when in it already (one pass, not a sort and a gather)."""
    if _in_canonical_order(rows):
        return rows
    order = canonical_order(rows)
    return {c: v[order] for c, v in rows.items()}


def canonical_order(rows: Mapping[str, np.ndarray]) -> np.ndarray:
    """A row order that depends on content only (for byte-identical stored state in any input order).

    By time; rows at the same instant by a 32-bit hash of their addresses and
    label inside their group (one uint64 sort of the tied rows), and the rare
    rows whose hash also ties by every column.
    """
    n = len(rows["timestamp"])
    order = time_order(rows)
    if n < 2:
        return order
    ts = rows["timestamp"][order]
    tie = ts[1:] == ts[:-1]
    if not tie.any():
        return order
    involved = np.zeros(n, bool)
    involved[1:] |= tie
    involved[:-1] |= tie
    at = np.flatnonzero(involved)
    sub = order[at]
    group = np.cumsum(np.concatenate([[True], ~tie]))[at] - 1  # rank of the instant, increasing
    # Tied rows are nearly always told apart by their addresses and label: hash
    # those (the rows that tie on them too are ordered by every column below).
    h = _tie_hash({c: rows[c][sub] for c in ("sender_key", "recipient_key", "label", "is_message")})
    if group.max() >= 2**32:
        inner = np.lexsort((h, group))
    else:
        inner = np.argsort((group.astype(np.uint64) << np.uint64(32)) | (h >> np.uint64(32)), kind="stable")
    sub = sub[inner]
    composite = (group[inner].astype(np.uint64) << np.uint64(32)) | (h[inner] >> np.uint64(32))
    same = composite[1:] == composite[:-1]
    if same.any():  # a 32-bit collision (or identical rows): settle it with every column
        both = np.zeros(len(sub), bool)
        both[1:] |= same
        both[:-1] |= same
        idx = np.flatnonzero(both)
        keys = [rows[c][sub[idx]] for c in reversed(EVENT_COLUMNS)] + [composite[idx]]
        sub[idx] = sub[idx][np.lexsort(keys)]
    order[at] = sub
    return order


def _tie_hash(rows: Mapping[str, np.ndarray]) -> np.ndarray:
    """The hash that orders the rows of one instant (its high 32 bits): addresses, label and kind."""
    h = mix64(rows["sender_key"], rows["recipient_key"])
    return mix64(h, (rows["label"].astype(np.uint64) << np.uint64(8)) | rows["is_message"])


def _in_canonical_order(rows: Mapping[str, np.ndarray]) -> bool:
    """Whether the rows are in :func:`canonical_order` already (as stored rows are): in time order, and each
    instant's rows by strictly increasing hash (equal hashes: False, the sort settles them by every column).
    One pass over the rows, where sorting them gathers every column."""
    ts = rows["timestamp"]
    if len(ts) < 2:
        return True
    if not (ts[1:] >= ts[:-1]).all():
        return False
    tie = ts[1:] == ts[:-1]
    if not tie.any():
        return True
    involved = np.zeros(len(ts), bool)  # the tied rows, each hashed once
    involved[1:] |= tie
    involved[:-1] |= tie
    at = np.flatnonzero(involved)
    high = _tie_hash({c: rows[c][at] for c in ("sender_key", "recipient_key", "label", "is_message")}) >> np.uint64(32)
    pair = tie[at[:-1]]  # (a tied row's successor is the next involved one)
    return bool((high[:-1][pair] < high[1:][pair]).all())
