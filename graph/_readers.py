"""Readers: DataFrames, Parquet (files, directories, hive partitions), CSV, JSON Lines,
iterables of records and globs, whole or in bounded-memory chunks."""

from __future__ import annotations

import codecs
import collections
import contextlib
import glob as globlib
import io
import itertools
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from ._errors import CommGraphError, ConfigError, Problem, ReasonCode, SchemaError
from ._keys import stable_keys
from ._messages import Messages, renumber_rejects
from ._schema import AUTH_COLUMNS, EDGE_RECIPIENT_COLUMN, REQUIRED_COLUMNS, STRING_DTYPE, TYPED_RECIPIENT_COLUMNS
from ._tenants import with_own_domains
from ._timestamps import (
    DEFAULT_TIME_RANGE, TIMESTAMP_UNITS, instant_problem, iso_instant, parse_timestamps, refuse_clock_words,
    time_range_bounds,
)
from ._validate import (_blank_text_missing, _check_zone, _validate_handed_over, apply_column_mapping,
                        first_lone_surrogate, id_text, reject_rows)

__all__ = ["read_messages", "read_frame", "list_sources"]

_FORMATS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}
_COMPRESSION = (".gz", ".bz2", ".zst", ".xz", ".zip")


def _keep_bad_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    """A decode error handler: each byte the encoding cannot decode becomes the lone surrogate U+DC00 + byte.

    As 'surrogateescape' does for bytes from 0x80, and for lower ones too (a UTF-16 file's unpaired
    surrogate, an odd trailing byte), which 'surrogateescape' cannot keep: the row holding them is rejected,
    naming its bytes, where the decode failed for the whole file."""
    bad = error.object[error.start:error.end]
    return "".join(chr(0xDC00 + b) for b in bad), error.end


_BAD_BYTES = "commgraph.keep-bad-bytes"
codecs.register_error(_BAD_BYTES, _keep_bad_bytes)


_BAD_BYTE = re.compile("[\udc00-\udcff]")  # a byte kept by _keep_bad_bytes
def _escaped_surrogate(line: str, value: Any) -> str | None:
    """The first UTF-16 surrogate without its other half that a JSON line's escapes wrote into its keys or values
    (nested ones too), as its escape (``\\ud800``); None when there is none. json.loads joins a whole pair into its
    character and reads an escaped backslash as one (``"C:\\\\udb"`` is no escape), so a surrogate left in a string
    was written alone. A line holding bytes its encoding could not decode (kept as surrogates) is the
    encoding's to reject."""
    if not _writes_surrogate_escape(line) or _BAD_BYTE.search(line):
        return None
    return first_lone_surrogate(value)


def _writes_surrogate_escape(text: str) -> bool:
    """Whether JSON text writes a UTF-16 surrogate escape at all (an emoji's pair, say): a substring test, many
    times quicker than parsing."""
    return "\\ud" in text or "\\uD" in text


class _ReadLineByLine(Exception):
    """A JSON Lines part that pandas must not parse whole (it drops a lone surrogate escape)."""


def _shown(value: str) -> str:
    """A value with the bytes its encoding could not decode written as \\xNN (never decoded as other text)."""
    return _BAD_BYTE.sub(lambda byte: f"\\x{ord(byte.group()) - 0xDC00:02x}", value)


# Identifiers, addresses and names are text however they look: a reader that infers types turns tenant
# "007" into 7 (merged with tenant "7") and message id "1e3" into 1000.0 (a false duplicate of "1000").
_TEXT_COLUMNS = ("tenant_id", "message_id", "sender", "sender_display_name", "recipients",
                 *TYPED_RECIPIENT_COLUMNS, EDGE_RECIPIENT_COLUMN, "reply_to", "return_path", "subject")


def _text_columns(columns: Mapping[str, str] | None) -> frozenset[str]:
    """The input's names (after the ``columns`` mapping) of the columns read as text."""
    columns = columns or {}
    return frozenset(columns.get(name, name) for name in _TEXT_COLUMNS)


def _auth_columns(columns: Mapping[str, str] | None) -> frozenset[str]:
    """The input's names (after the ``columns`` mapping) of the authentication-result columns."""
    columns = columns or {}
    return frozenset(columns.get(name, name) for name in AUTH_COLUMNS)


def _format_of(path: Path, format: str | None) -> str:
    if format is not None and format not in ("parquet", "csv", "jsonl"):
        raise ConfigError(f"'format' must be one of 'parquet', 'csv', 'jsonl' (got {format!r})")
    if path.is_dir():
        if format not in (None, "parquet"):
            _check_parquet_directory(path, format)  # (else parquet_dataset checks it, when it opens the directory)
        return "parquet"
    if format is not None:
        return format
    named, _ = _named_format(path)
    if named is not None:
        return named
    raise ConfigError(f"cannot tell the format of {str(path)!r} from its name; pass format='parquet', 'csv' "
                      "or 'jsonl'")


def _named_format(path: Path) -> tuple[str | None, str]:
    """The format a file's name says (its last suffix that is no compression's), and that suffix with the
    compression after it ('.csv.gz'); (None, '') when the name says none.

    Examples
    --------
    >>> _named_format(Path("day/mail.CSV.gz")), _named_format(Path("notes.txt"))
    (('csv', '.csv.gz'), (None, ''))
    """
    suffixes = [x.lower() for x in path.suffixes]
    at = next((i for i in range(len(suffixes) - 1, -1, -1) if suffixes[i] not in _COMPRESSION), None)
    kind = _FORMATS.get(suffixes[at]) if at is not None else None
    return (kind, "".join(suffixes[at:])) if kind is not None else (None, "")


def _check_parquet_directory(path: Path, format: str | None) -> None:
    """Refuse a directory that is no Parquet dataset (a folder of CSV or JSON Lines files), naming the glob
    that reads it, instead of pyarrow's "Is this a 'parquet' file?" about its first file.

    The walk stops at the first Parquet file: an archive's check costs a few directory reads, not one per file
    (a job reads the archive once per tenant)."""
    other: dict[str, str] = {}  # format -> the first suffix seen of it
    if format in (None, "parquet"):
        for found in path.rglob("*"):
            if found.name.startswith((".", "_")):
                continue
            kind, suffix = _named_format(found)
            if kind == "parquet":
                return
            if kind is not None and found.is_file():
                other.setdefault(kind, suffix)
        if not other:
            return  # (no file says what it is: read as Parquet, as pyarrow's own errors then say)
    kind = format if format not in (None, "parquet") else min(other)
    suffix = other.get(kind, ".csv" if kind == "csv" else ".jsonl")
    raise ConfigError(f"{str(path)!r} is a directory, read as a Parquet dataset (hive-partitioned folders); "
                      f"to read its {'CSV' if kind == 'csv' else 'JSON Lines'} files give them, or a glob such "
                      f"as {str(path / '**' / ('*' + suffix))!r}")


def list_sources(source: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The files and directories a path, glob or list of them names, in sorted order.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("b.csv", "a.csv"): _ = (d / name).write_text("x\\n")
    >>> [p.name for p in list_sources(str(d / "*.csv"))]
    ['a.csv', 'b.csv']
    """
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if any(ch in text for ch in "*?["):
            matched = sorted(globlib.glob(text, recursive=True))
            if not matched:
                raise ConfigError(f"the pattern {text!r} matches no file")
            paths += [Path(m) for m in matched]
        else:
            path = Path(text)
            if not path.exists():
                raise ConfigError(f"no such file or directory: {text!r}")
            paths.append(path)
    return paths


def _csv_header(path: Any, encoding: str, sep: str, **options: Any) -> list[str]:
    """The column names of a CSV file, its first data line checked against them.

    pandas takes a first data line with more fields than the header as the row's index and every value
    one column to the left; read without a header, such a line raises ParserError ("Expected 5 fields in
    line 2, saw 6") as any other line with too many fields does.
    """
    head = pd.read_csv(path, sep=sep, encoding=encoding, header=None, nrows=2, dtype=object,
                       keep_default_na=False, **options)
    return [str(name) for name in head.iloc[0]] if len(head) else []


def _repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, in order of first occurrence."""
    counts = collections.Counter(names)
    return [name for name in counts if counts[name] > 1]


def _refuse_repeated_names(header: list[str], path: Any) -> None:
    """Refuse a header naming a column twice: pandas reads the second ``sender`` as ``sender.1``, a column the
    contract does not know, so its values would be neither used nor rejected (a second recipients column
    silently lost its recipients).

    Examples
    --------
    >>> _refuse_repeated_names(["sender", "recipients", "recipients"], "mail.csv")
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: the header of mail.csv names the column 'recipients' twice or more: ...
    """
    repeated = _repeated(header)
    if repeated:
        raise ConfigError(
            f"the header of {path} names the column{'s' if len(repeated) > 1 else ''} "
            f"{', '.join(repr(n) for n in repeated)} twice or more: only the first would be read, the copies' "
            "values neither used nor rejected. Fix: give each column of the file one name (merge the copies' "
            "values into the first, as a list of recipients, or rename or drop them)")


def _missing_spellings(columns: list[str], text: frozenset[str], auth: frozenset[str]) -> dict[str, Any]:
    """read_csv's options for missing values: in text columns (identifiers, addresses, names, subjects) only
    an empty field is missing, in the others pandas' usual spellings ('NA', 'NULL', 'n/a') too.

    With pandas' defaults everywhere, a tenant "NA" lost its mail (tenant_id missing), a message id "null"
    was refused and a display name "N/A" or a subject "NULL" silently changed; with none anywhere, a label,
    labeled_at or spf column written NULL for "none" was refused."""
    from pandas._libs.parsers import STR_NA_VALUES

    usual = sorted(STR_NA_VALUES | {""})
    # 'None' is an authentication result of its own (no SPF record, say), not a missing one.
    results = [v for v in usual if v.lower() != "none"]
    return {"keep_default_na": False,
            "na_values": {c: [""] if c in text else results if c in auth else usual for c in columns}}


def _read_csv(path: Path, encoding: str, chunksize: int | None, sep: str | None, text: frozenset[str],
              auth: frozenset[str]):
    sep = sep or ("\t" if ".tsv" in path.suffixes else ",")
    header = _csv_header(path, encoding, sep)
    _refuse_repeated_names(header, path)
    missing = _missing_spellings(header, text, auth)
    # Text columns named here and absent from the file are ignored by pandas.
    return pd.read_csv(path, sep=sep, encoding=encoding, chunksize=chunksize, low_memory=False, index_col=False,
                       dtype={name: STRING_DTYPE for name in text}, **missing)


def _read_csv_salvaging(path: Path, encoding: str, sep: str | None, text: frozenset[str],
                        auth: frozenset[str]) -> pd.DataFrame:
    """Read a CSV whose bytes are not all valid in ``encoding``; bad bytes become lone surrogates.

    The file is decoded here, each bad byte kept as a lone surrogate, and handed to the parser of
    :func:`_read_csv` as UTF-8 whose surrogates pass through: one parser, which counts rows as the first read
    did (the python parser skips a line of only a quoted empty field, the C one reads it as a row, so a
    chunked read that salvages after its first chunks skips exactly the rows it handed out), and no bad byte
    of another encoding is read back as valid UTF-8. A bad byte in the header is refused, naming the column
    (no row can be read under a garbled name)."""
    from pandas.io.common import get_handle

    sep = sep or ("\t" if ".tsv" in path.suffixes else ",")
    with get_handle(path, "rb", compression="infer", is_text=False) as handles:
        decoded = handles.handle.read().decode(encoding, _BAD_BYTES)
    data = decoded.encode("utf-8", "surrogatepass")
    del decoded
    salvage = {"encoding": "utf-8", "encoding_errors": "surrogatepass"}
    header = _csv_header(io.BytesIO(data), "utf-8", sep, encoding_errors="surrogatepass")
    _refuse_repeated_names(header, path)
    garbled = [name for name in header if _BAD_BYTE.search(name)]
    if garbled:
        shown = _shown(garbled[0])
        raise ConfigError(f"the header of {path} holds bytes that are not {encoding} in the column name {shown!r}; "
                          "give the file's encoding (encoding=, --encoding), or re-save it in "
                          f"{encoding}")
    return pd.read_csv(io.BytesIO(data), sep=sep, dtype=object, index_col=False, low_memory=False, **salvage,
                       **_missing_spellings(header, text, auth))


# A hive partition's folder: name=value.
_PARTITION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")


def partition_base(directory: str | os.PathLike) -> str | None:
    """The folder above the partitions a directory is (``archive/tenant_id=t`` -> ``archive``, absolute): the
    ``name=value`` folders that end its path, up to the first that is not one (as Spark's basePath reads them:
    a ``run=3`` folder further up names nothing), for reading their values as a whole archive's read gives
    them; None when the directory is no partition.

    (Hive's folder for missing values names no value: a path through it is read as pyarrow reads it.)

    Examples
    --------
    >>> partition_base("/lake/mail/tenant_id=acme/date=2025-01-02"), partition_base("/run=3/mail")
    ('/lake/mail', None)
    """
    parts = Path(os.path.abspath(directory)).parts
    named = len(parts)
    while named > 1 and _PARTITION.fullmatch(parts[named - 1]):
        named -= 1
    if named == len(parts) or any(part.endswith("=__HIVE_DEFAULT_PARTITION__") for part in parts[named:]):
        return None
    return str(Path(*parts[:named]))


def parquet_dataset(source: str | os.PathLike | list[str], *, base_dir: str | os.PathLike | None = None,
                    text: frozenset[str] = frozenset(_TEXT_COLUMNS)) -> Any:
    """A Parquet file or directory (or files under ``base_dir``) as a pyarrow dataset, hive partition values as text.

    pyarrow infers a partition's type from its values: ``tenant_id=007`` would
    become the integer 7, and tenant "007" would turn into tenant "7". Every
    partition column is read as the string written in the path instead, as
    Spark reads it with ``partitionColumnTypeInference`` off. Files that hold a column of ``text``
    (identifiers, addresses, names) as text in one and numbers in another are refused.

    Examples
    --------
    >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tenant_id=007").mkdir()
    >>> pq.write_table(pa.table({"message_id": ["m1"]}), root / "tenant_id=007" / "part-0.parquet")
    >>> parquet_dataset(root).to_table().column("tenant_id").to_pylist()
    ['007']
    >>> parquet_dataset(root / "tenant_id=007").to_table().column("tenant_id").to_pylist()  # one partition
    ['007']
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    source = os.fspath(source) if isinstance(source, (str, os.PathLike)) else source
    if isinstance(source, str) and os.path.isdir(source):
        _check_parquet_directory(Path(source), None)  # (a folder of CSV files: say which glob reads it)
    # Partitions are read from the paths below a directory (pyarrow's default), and from a file's whole path;
    # a directory that is itself a partition (archive/tenant_id=t/) keeps the values its own path names.
    base = os.fspath(base_dir) if base_dir is not None else source if isinstance(source, str) and os.path.isdir(
        source) else None
    above = partition_base(base) if base_dir is None and base is not None else None
    if above is not None:
        source, base = os.path.abspath(base), above
    try:
        # The files first, no partitioning inferred: pyarrow would type a partition by its values (int32 for
        # 'tenant_id=7') and fail to merge it with a file's own column of that name ('large_string vs string',
        # as pandas writes text), failing every tenant of the archive.
        found = ds.dataset(source, format="parquet", partition_base_dir=base)
        below = ["/" + f[len(base):] if base is not None else f for f in found.files]
        names = list(dict.fromkeys(part.partition("=")[0] for f in below
                                   for part in f.replace(os.sep, "/").split("/")[1:-1] if "=" in part))
        if names:
            # The same files again (no second walk of the directory), with every partition key a string, also
            # where a file holds a column of that name (read as text beside the folder's value, compared below).
            strings = ds.partitioning(pa.schema([(name, pa.string()) for name in names]), flavor="hive")
            schema = found.schema
            for name in names:
                at = schema.get_field_index(name)
                schema = schema.append(pa.field(name, pa.string())) if at < 0 else schema.set(
                    at, pa.field(name, pa.string()))
            found = ds.dataset(found.files, schema=schema, format="parquet", partitioning=strings,
                               partition_base_dir=base)
        found = _with_every_column(found, text)
        if names:
            _check_partition_columns(found)
        return found
    except pa.ArrowInvalid as exc:  # (pyarrow's text names the file)
        if "duplicate field names" in str(exc):  # (pyarrow's text names no file: find it)
            _refuse_repeated_parquet_columns(source)
        raise CommGraphError(f"cannot read the input as Parquet: {str(exc).rstrip('.')}. Fix: replace a file cut "
                             "off or damaged with a complete copy; for another format, pass format='parquet', "
                             "'csv' or 'jsonl'") from exc


def _check_partition_columns(dataset: Any) -> None:
    """Refuse files whose own column disagrees with the partition folder they lie in.

    A scan gives every row of ``tenant_id=acme/part-0.parquet`` the folder's value, whatever the file's own
    ``tenant_id`` column holds: a row there whose column says ``globex`` would be read, silently, as acme's
    mail. The files that hold a partition column of their own are checked: by their row groups' statistics
    (a footer already read, nothing more when they hold the folder's value alone), else by reading that column.
    Values are compared as validation compares ids (white space stripped); a missing value is the folder's.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    for fragment in dataset.get_fragments():
        keys = ds.get_partition_keys(fragment.partition_expression)
        schema = fragment.physical_schema
        for name, folder in keys.items():
            if folder is None or schema.get_field_index(name) < 0:
                continue
            folder = str(folder).strip()
            fragment.ensure_complete_metadata()
            stats = [g.statistics.get(name) if g.statistics else None for g in fragment.row_groups]
            if stats and all(s is not None and s.get("min") is not None and str(s["min"]).strip() == folder
                             and str(s["max"]).strip() == folder for s in stats):
                continue
            # The file's own values: a fragment made without the partition's expression reads them as written.
            own = fragment.format.make_fragment(fragment.path, fragment.filesystem).to_table(columns=[name])
            values = pc.utf8_trim_whitespace(pc.cast(own.column(name), pa.large_string()))
            differs = pc.fill_null(pc.and_(pc.not_equal(values, folder), pc.not_equal(values, "")), False)
            rows = np.flatnonzero(np.asarray(differs, dtype=bool))
            if not len(rows):
                continue
            shown = ", ".join(f"file row {r} {own.column(name)[int(r)].as_py()!r}" for r in rows[:5])
            more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
            theirs = sorted({str(v) for v in pc.unique(values.take(pa.array(rows))).to_pylist()})
            raise ConfigError(
                f"{fragment.path} lies in the partition folder {name}={folder} but its own {name!r} column says "
                f"otherwise in {len(rows)} row{'s' if len(rows) != 1 else ''} ({shown}{more}); read as the folder "
                f"says, they would be counted as the mail of {name} {folder!r}. Fix: move those rows to the "
                f"folder{'s' if len(theirs) > 1 else ''} of their own "
                f"{', '.join(f'{name}={v}' for v in theirs[:5])}{', ...' if len(theirs) > 5 else ''}, or correct "
                f"the column if the folder is right")


def _refuse_repeated_parquet_columns(source: str | list[str]) -> None:
    """Refuse the first Parquet file under ``source`` whose schema names a column twice (pyarrow's own error,
    "Can't unify schema with duplicate field names", names no file); only after that error, so a read that
    succeeds never pays for the walk."""
    import pyarrow.parquet as pq

    paths = [Path(p) for p in ([source] if isinstance(source, str) else source)]
    files = [f for p in paths for f in (sorted(p.rglob("*")) if p.is_dir() else [p])
             if f.is_file() and not f.name.startswith((".", "_"))]
    for file in files:
        try:
            repeated = _repeated(pq.read_schema(file).names)
        except Exception:  # (a damaged file is named by the error this one replaces)
            continue
        if repeated:
            raise ConfigError(
                f"{file} names the column{'s' if len(repeated) > 1 else ''} {', '.join(repr(n) for n in repeated)} "
                "twice or more: which copy holds the column's values cannot be told. Fix: write the file with "
                "each column once (merge the copies' values into one, or rename or drop them)")


def _zone_differs(a: Any, b: Any) -> bool:
    """Whether two column types are timestamps, one naive and the other zoned."""
    import pyarrow as pa

    return pa.types.is_timestamp(a) and pa.types.is_timestamp(b) and (a.tz is None) != (b.tz is None)


def _kind(type: Any) -> str | None:
    """'text' or 'number' for a column type that is one of them, else None."""
    import pyarrow as pa

    if pa.types.is_dictionary(type):
        return _kind(type.value_type)
    if pa.types.is_string(type) or pa.types.is_large_string(type) or pa.types.is_string_view(type):
        return "text"
    if pa.types.is_integer(type) or pa.types.is_floating(type) or pa.types.is_decimal(type):
        return "number"
    return None


def _kind_differs(a: Any, b: Any) -> bool:
    """Whether one column type is text and the other numbers."""
    kinds = {_kind(a), _kind(b)}
    return kinds == {"text", "number"}


# Why each disagreement between files is refused rather than read one way.
_DISAGREEMENTS = {
    _zone_differs: ("time zone", "Read as one column, the naive times would be taken as UTC (whatever timezone= "
                                 "says) or the zoned ones lose their zone; rewrite the naive files with their zone, "
                                 "or read the two kinds of files apart"),
    # Read as numbers, the text '007' would become 7 (another tenant's or message's id); read as text, a number
    # 7 may be an id that lost its leading zeros upstream ('007' read by a tool that inferred types), which
    # then stays apart from its text form unseen: only the writer knows which ids are the same.
    _kind_differs: ("type", "Read as one column, text would be cast to numbers ('007' becomes 7, another id) or "
                            "numbers that lost their leading zeros upstream would pass as ids of their own; "
                            "rewrite the files with one type (identifiers as text), or read them apart"),
}


def _integers_as_text(table: Any, text: frozenset[str]) -> Any:
    """``table`` (or a record batch) with its integer columns among ``text`` as the strings of their values.

    ``to_pandas`` turns an integer column holding a null into floats, which are then written '7.0'; as text
    each value is written as it was (7 -> '7', nulls kept).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for at, field in enumerate(table.schema):
        if field.name in text and pa.types.is_integer(field.type):
            table = table.set_column(at, field.name, pc.cast(table.column(at), pa.large_string()))
    return table


def _binary_as_text(table: Any) -> tuple[Any, list[str]]:
    """``table`` (or a record batch) with its binary columns as text, and the names of those holding bytes UTF-8
    cannot decode (left binary: :func:`_decoded_keeping_bad_bytes` reads them after ``to_pandas``).

    pandas turned such bytes into text while validating, a bare UnicodeDecodeError failing the whole read where
    CSV and JSON Lines reject the rows holding them as ``invalid_encoding``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    undecodable = []
    for at, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            try:
                table = table.set_column(at, field.name, pc.cast(table.column(at), pa.large_string()))
            except pa.ArrowInvalid:  # (the cast checks the bytes are UTF-8)
                undecodable.append(field.name)
    return table, undecodable


def _decoded_keeping_bad_bytes(frame: pd.DataFrame, undecodable: list[str]) -> pd.DataFrame:
    """``frame`` with the bytes of the ``undecodable`` columns decoded, each byte UTF-8 cannot decode kept as a
    lone surrogate, marked for :func:`_encoding_rejects` to set their rows aside as a CSV file's are."""
    if not undecodable:
        return frame
    for name in undecodable:  # (Python per value: only in the columns whose cast failed)
        frame[name] = pd.Series([v.decode("utf-8", _BAD_BYTES) if isinstance(v, bytes) else v for v in frame[name]],
                                index=frame.index, dtype=object)
    frame.attrs.update(salvaged_encoding="utf-8", salvaged_columns=tuple(undecodable))
    return frame


def _complete_schema(fragment: Any) -> Any:
    """A Parquet fragment's schema, its footer read and kept (row groups and statistics too, for pruning)."""
    fragment.ensure_complete_metadata()
    return fragment.physical_schema


def _read_footers(fragments: list[Any]) -> None:
    """Read and keep the footers of Parquet fragments, leaving those that cannot be read to a later
    :func:`_complete_schema`, which raises their error in the files' order."""
    for fragment in fragments:
        with contextlib.suppress(Exception):
            fragment.ensure_complete_metadata()


#: Footers read at once by :func:`_with_every_column` (mostly waiting on the filesystem, on a remote one).
_FOOTER_THREADS = 8


def _with_every_column(dataset: Any, text: frozenset[str] = frozenset(_TEXT_COLUMNS)) -> Any:
    """``dataset`` with the columns of every file, not only of the first one pyarrow looks at.

    pyarrow takes a directory's columns from its first file, and a scan reads only those: an archive
    whose early files have no ``labeled_at`` (labels began later) would lose every label. Columns that
    later files add are appended, each with its type in the first file that has it (the types of the
    columns already there are left as they are, but times take the finest unit of any file that holds
    them all). Files that disagree on a column's time zone, or hold a column of ``text`` as text in one
    and numbers in another, are refused, naming two of them. Every footer is read for this, several at
    once; they stay with the fragments, so a scan or the ``since`` pruning does not read them again.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.dataset as ds

    fragments = list(dataset.get_fragments())
    if len(fragments) < 2:
        return dataset
    # Several footers at once (pyarrow releases the GIL while it reads one), each thread given every eighth
    # file in one task: a task per file (0.1 ms of reading) cost as much again in handing tasks out.
    with ThreadPoolExecutor(max_workers=_FOOTER_THREADS) as pool:
        list(pool.map(_read_footers, [fragments[i::_FOOTER_THREADS] for i in range(_FOOTER_THREADS)]))
    schemas = [_complete_schema(f) for f in fragments]  # (read already, bar a damaged file: the first raises)
    schema = dataset.schema
    # A partition key is text, the folder's, whatever a file's own column of that name holds (each file's values
    # are compared with its folder's by _check_partition_columns).
    keys = set(dataset.partitioning.schema.names) if getattr(dataset, "partitioning", None) is not None else set()
    # An archive's files nearly all share one schema: each distinct one is checked once, at its first file
    # (a schema seen before adds no column and disagrees with none it did not disagree with then).
    checked: list[Any] = []
    for fragment, file_schema in zip(fragments, schemas):
        if any(file_schema.equals(s) for s in checked):  # (equals: in C++; a schema's hash is costlier)
            continue
        checked.append(file_schema)
        for field in file_schema:
            if field.name in keys:
                continue
            at = schema.get_field_index(field.name)
            if at < 0:
                schema = schema.append(field)
                continue
            if pa.types.is_null(schema.field(at).type) and not pa.types.is_null(field.type):
                # A column with no value in the first files (pandas writes an all-None column as type null: a
                # day without labels) takes the type of the first file with values, which the null ones cast to.
                schema = schema.set(at, schema.field(at).with_type(field.type))
                continue
            held = schema.field(at).type
            if pa.types.is_timestamp(held) and pa.types.is_timestamp(field.type) and held.tz == field.type.tz \
                    and held.unit != field.type.unit:
                # Times in other units (an export in milliseconds, a later one in nanoseconds): the finer, which
                # the others cast to exactly (pyarrow cast every file to the first's and failed on finer ones).
                if TIMESTAMP_UNITS.index(field.type.unit) > TIMESTAMP_UNITS.index(held.unit):
                    schema = schema.set(at, schema.field(at).with_type(field.type))
                continue
            for differs, (what, why) in _DISAGREEMENTS.items():
                if differs(schema.field(at).type, field.type) and (differs is _zone_differs or field.name in text):
                    first = next(f for f, s in zip(fragments, schemas) if s.get_field_index(field.name) >= 0
                                 and not pa.types.is_null(s.field(field.name).type)  # (a file without values)
                                 and not differs(s.field(field.name).type, schema.field(at).type))
                    raise ConfigError(
                        f"Parquet files disagree on the {what} of column {field.name!r}: {first.path} holds "
                        f"{schema.field(at).type}, {fragment.path} holds {field.type}. {why}")
    schema = _units_that_hold(schema, fragments, schemas)
    if schema.equals(dataset.schema):
        return dataset
    return ds.FileSystemDataset(fragments, schema, dataset.format, dataset.filesystem)


def _units_that_hold(schema: Any, fragments: list[Any], schemas: list[Any]) -> Any:
    """``schema`` with a time column made nanoseconds (the finest of its files) back to microseconds where a
    file in a coarser unit holds a time nanoseconds cannot (outside 1677-2262: a 9999-12-31 placeholder, which
    validation refuses as out of range; the cast to nanoseconds would fail the whole read)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for at, field in enumerate(schema):
        if not pa.types.is_timestamp(field.type) or field.type.unit != "ns":
            continue
        units = [(f, s.field(field.name).type) for f, s in zip(fragments, schemas)
                 if s.get_field_index(field.name) >= 0 and pa.types.is_timestamp(s.field(field.name).type)]
        for fragment, unit in units:
            if unit.unit == "ns":
                continue
            bounds = pc.min_max(fragment.to_table(columns=[field.name]).column(field.name)).as_py()
            far = next((b for b in (bounds["min"], bounds["max"])
                        if b is not None and not _NS_MIN <= b.year <= _NS_MAX), None)
            if far is None:
                continue
            for finer, finer_unit in units:  # microseconds then: nanosecond files must hold whole microseconds
                if finer_unit.unit == "ns" and _sub_microseconds(finer, field.name):
                    raise ConfigError(
                        f"Parquet files disagree on the unit of column {field.name!r}: {fragment.path} holds {unit} "
                        f"times outside the years nanoseconds hold ({far}), {finer.path} nanosecond times that "
                        "microseconds cannot; write the files in one unit, or drop the placeholder dates")
            schema = schema.set(at, field.with_type(pa.timestamp("us", tz=field.type.tz)))
            break
    return schema


def _sub_microseconds(fragment: Any, column: str) -> bool:
    """Whether a file's nanosecond times include any that is not a whole microsecond."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ns = pc.fill_null(fragment.to_table(columns=[column]).column(column).cast(pa.int64()), 0)
    return bool(np.any(ns.to_numpy() % 1000))


# The years times in nanoseconds hold (whole years: 1677-09-21 to 2262-04-11).
_NS_MIN, _NS_MAX = 1678, 2261


def partition_values(source: Any, column: str) -> list[str] | None:
    """The values of ``column`` in Parquet directories partitioned by it at the top (``column=value`` folders),
    from the folder names alone; None for any other input (read the column instead).

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for tenant in ("acme", "007"): (root / f"tenant_id={tenant}").mkdir()
    >>> partition_values(root, "tenant_id")
    ['007', 'acme']
    >>> partition_values(pd.DataFrame({"tenant_id": ["acme"]}), "tenant_id") is None
    True
    """
    from urllib.parse import unquote

    items = [source] if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, (str, os.PathLike)) for s in items):
        return None
    values: set[str] = set()
    for path in list_sources(source):
        if not path.is_dir():
            return None
        children = [c for c in path.iterdir() if not c.name.startswith((".", "_"))]
        if not children or not all(c.is_dir() and c.name.startswith(f"{column}=") for c in children):
            return None
        # Hive writers escape a value as in a URI (pyarrow's default segment encoding).
        values.update(unquote(c.name[len(column) + 1:]).strip() for c in children)
    return sorted(values)


def _partitioned_example(rows: Mapping[str, int]) -> Path:
    """A temporary archive partitioned by tenant (``tenant_id=<id>/part-0.parquet``, ``rows[id]`` rows each), for
    the examples here."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(tempfile.mkdtemp())
    for tenant, n in rows.items():
        (root / f"tenant_id={tenant}").mkdir()
        pq.write_table(pa.table({"message_id": ["m"] * n}), root / f"tenant_id={tenant}" / "part-0.parquet")
    return root


def partition_rows(source: Any, column: str, *, only: Iterable[str] | None = None) -> dict[str, int] | None:
    """Rows per value of ``column`` (every value, or those in ``only``) in Parquet directories partitioned by
    it at the top, from the files' footers (a threaded count per partition, no column read); None for any
    other input.

    Examples
    --------
    >>> root = _partitioned_example({"acme": 3, "007": 2})
    >>> partition_rows(root, "tenant_id")
    {'007': 2, 'acme': 3}
    >>> partition_rows(root, "tenant_id", only=["acme"])
    {'acme': 3}
    """
    values = partition_values(source, column)
    if values is None:
        return None
    if only is not None:
        wanted = {str(v) for v in only}
        values = [v for v in values if v in wanted]
    from concurrent.futures import ThreadPoolExecutor

    # Footer reads wait on the filesystem more than they compute: several partitions at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(values, pool.map(lambda value: partition_size(source, column, value), values)))


def partition_size(source: Any, column: str, value: str) -> int:
    """Rows of one value of ``column`` in Parquet directories partitioned by it at the top, from its files'
    footers: only that value's folders are listed and opened.

    For a worker that counts its own tenant in an archive whose layout was checked once
    (:func:`partition_values`): :func:`partition_rows` checks the layout again at every call, listing every
    partition, which for each of thousands of tenants costs in proportion to all of them.

    Examples
    --------
    >>> root = _partitioned_example({"acme": 3, "007": 2})
    >>> partition_size(root, "tenant_id", "acme"), partition_size([root, root], "tenant_id", "007")
    (3, 4)
    """
    return sum(_parquet_dataset_of(p, _TenantFilter([value], column)).count_rows() for p in list_sources(source))


def _files_below(folder: Path) -> list[str]:
    """The files in ``folder`` and its subfolders whose names are not hidden (``.``, ``_``), as
    ``folder.glob("**/*")`` finds them (symbolic links to folders are not entered, unreadable folders are
    skipped, a broken link is no file), in the order of the walk.

    One ``os.scandir`` per folder, whose entries say which are files and folders without a ``stat`` each: a
    nightly job lists thousands of files (one per tenant and day), and pathlib's glob cost far more per file.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("date=1/a.parquet", "date=1/.a.crc", "_SUCCESS", "date=2/b.parquet"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     _ = (root / name).write_bytes(b"")
    >>> sorted(Path(f).relative_to(root).as_posix() for f in _files_below(root))
    ['date=1/a.parquet', 'date=2/b.parquet']
    """
    found: list[str] = []
    folders = [os.fspath(folder)] if folder.is_dir() else []
    while folders:
        try:
            with os.scandir(folders.pop()) as listing:
                entries = list(listing)
        except PermissionError:  # (as glob: a folder it cannot list holds nothing it finds)
            continue
        for entry in entries:
            try:
                is_file = entry.is_file()
            except OSError:  # (a link loop, ...: as Path.is_file decides)
                is_file = Path(entry.path).is_file()
            if is_file:
                if not entry.name.startswith((".", "_")):
                    found.append(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
    return found


def _parquet_dataset_of(path: Path, only: _TenantFilter | None,
                        text: frozenset[str] = frozenset(_TEXT_COLUMNS)) -> Any:
    """The Parquet dataset at ``path``, narrowed to the files that may hold ``only``'s tenants."""
    import pyarrow.dataset as ds

    dataset = None
    # (A wanted tenant's folder answers at once whether the archive is partitioned by tenant; only when none is
    # there are the folder's names read, once per call, which across thousands of tenants adds up.)
    if only is not None and path.is_dir() and (
            any((path / f"{only.column}={t}").is_dir() for t in only.tenants)
            or any(p.name.startswith(f"{only.column}=") for p in path.iterdir())):
        # Partitioned by tenant at the top: list only the wanted tenants' folders, so a job
        # over one tenant of thousands does not walk every other tenant's files.
        files = sorted(f for t in only.tenants for f in _files_below(path / f"{only.column}={t}"))
        for t in only.tenants:  # (a tenant's folder of CSV files: say which glob reads it)
            if (path / f"{only.column}={t}").is_dir():
                _check_parquet_directory(path / f"{only.column}={t}", None)
        if files:  # none: the full listing below gives the (empty) result its columns
            dataset = parquet_dataset(files, base_dir=path, text=text)
    dataset = dataset if dataset is not None else parquet_dataset(path, text=text)
    if only is not None:
        # Files partitioned by tenant that hold none of the wanted tenants are never opened.
        fragments = [f for f in dataset.get_fragments()
                     if only.may_hold(ds.get_partition_keys(f.partition_expression))]
        dataset = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    return dataset


_NANOSECONDS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}  # per unit of a timestamp


def _utc(instant: Any, *, iso: bool = False, name: str = "time_range end") -> pd.Timestamp:
    """An instant as a UTC timestamp (naive means UTC). ``iso`` (``since=``): text in ISO 8601 only
    ('01/02/2025' is refused: read month first it would be 2 January), and no instant (NaT, '') refused;
    otherwise (a ``time_range`` end) read as validation reads it, NaT meaning no bound."""
    given = instant
    if not iso:
        refuse_clock_words({name: instant})
    try:
        instant = iso_instant(instant) if iso else pd.Timestamp(instant)
        if instant is pd.NaT and iso:
            raise ValueError("no instant")
    except (ValueError, TypeError) as exc:
        why = instant_problem(exc)
        raise ConfigError(f"{'since=' if iso else name + ' '}{given!r} is not an instant{why}; give one in ISO "
                          "8601, such as 2025-02-01T00:00Z") from exc
    if instant is pd.NaT:
        return instant
    return instant.tz_localize("UTC") if instant.tzinfo is None else instant.tz_convert("UTC")


class _SinceFilter:
    """Read only the rows a refresh from ``since`` uses: sent at or after it, or labelled at or after it."""

    def __init__(self, since: Any, columns: Mapping[str, str] | None,
                 time_range: tuple | None = DEFAULT_TIME_RANGE):
        self.since = _utc(since, iso=True)
        # Times validation refuses as out of range are read wherever they are, so it rejects them (a 1980
        # placeholder), as the filter of other inputs keeps every refused time.
        self.range = time_range_bounds(time_range) if time_range is not None else None
        self.timestamp = (columns or {}).get("timestamp", "timestamp")
        self.labeled_at = (columns or {}).get("labeled_at", "labeled_at")
        self.tenant_id = (columns or {}).get("tenant_id", "tenant_id")
        self.message_id = (columns or {}).get("message_id", "message_id")

    def rows(self, frame: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
        """The rows of ``frame`` a refresh from ``since`` may use, judged by validation's own parse of their
        times (``options``: :func:`validate`'s), so naive, text and numeric timestamps count as validation
        counts them: rows sent or labelled at or after ``since``, and rows whose ``timestamp`` or present
        ``labeled_at`` validation refuses (it rejects them with their reason, never a filter unseen)."""
        if self.timestamp not in frame.columns or not len(frame):
            return frame  # validation names the missing column
        # validate's option names, as parse_timestamps names them; absent ones keep the defaults both share.
        parse = {name: options[option] for option, name in (("timezone", "timezone"), ("timestamp_unit", "unit"),
                                                             ("timestamp_origin", "origin"),
                                                             ("time_range", "time_range")) if option in options}
        sent = parse_timestamps(frame[self.timestamp], **parse).values
        keep = ~(sent < self.since).to_numpy(dtype=bool, na_value=False)  # refused (NaT) rows stay
        if self.labeled_at in frame.columns and not keep.all():
            given = _blank_text_missing(frame[self.labeled_at])  # blank is no label time, as validation reads it
            labelled = parse_timestamps(given, **parse)
            present = given.notna().to_numpy()
            keep |= (labelled.values >= self.since).to_numpy(dtype=bool, na_value=False)
            keep |= present & (labelled.reason != None)  # noqa: E711 (element-wise)
        if self.tenant_id in frame.columns and self.message_id in frame.columns:
            keep = _whole_messages(keep, frame[self.tenant_id], frame[self.message_id])
        return frame if keep.all() else frame[keep]

    def at(self, type: Any, instant: pd.Timestamp | None = None) -> Any:
        """``since`` (or ``instant``) as a pyarrow scalar in the unit and zone of a column of ``type``, rounded
        up to the unit.

        A column's values are whole units, so ``value >= t`` is ``value >= t rounded up`` exactly (and
        ``value < t`` is ``value < t rounded up``); in the column's own unit, no value is cast (a far-future
        placeholder in microseconds, 9999-12-31, does not fit in nanoseconds: the comparison would fail
        instead of keeping it for validation).
        """
        import pyarrow as pa

        instant = self.since if instant is None else instant
        # In Python integers (a range's end may lie beyond nanoseconds: 2500-01-01), clamped to the column's
        # range: an instant beyond every value it can hold compares as its extreme value does.
        nanoseconds = int(instant.asm8.view("i8")) * _NANOSECONDS[instant.unit]
        value = min(max(-(-nanoseconds // _NANOSECONDS[type.unit]), -2**63 + 1), 2**63 - 1)
        return pa.scalar(value, type=pa.timestamp(type.unit, tz=type.tz))

    def applies(self, schema: Any) -> bool:
        """Whether the rows of ``schema`` can be filtered before validation: its timestamp columns are zoned.

        Only zoned timestamps name an instant without validation's help: a naive one is read in
        ``timezone``, text and numbers are parsed by validation; such inputs are read whole.
        """
        import pyarrow as pa

        names = [self.timestamp] + ([self.labeled_at] if self.labeled_at in schema.names else [])
        return self.timestamp in schema.names and all(
            pa.types.is_timestamp(schema.field(n).type) and schema.field(n).type.tz is not None for n in names)


def _pruned(dataset: Any, since: _SinceFilter) -> tuple[Any, dict[tuple[str, int], int]]:
    """The row groups of ``dataset`` that may hold rows sent or labelled at or after ``since``, as a dataset of
    one fragment per row group, with each row group's first row in its file.

    Decided from each row group's statistics, not by pyarrow's filter pruning: that keeps a row group
    whose ``labeled_at`` holds any null (most mail is never labelled), as ``null >= since`` is not false.
    """
    import pyarrow.dataset as ds

    def may_hold(statistics: Any, num_rows: int, when_absent: bool, nulls_wanted: bool = False) -> bool:
        if statistics is None:
            return when_absent
        if nulls_wanted and (not statistics.has_null_count or statistics.null_count > 0):
            return True
        if statistics.has_null_count and statistics.null_count == num_rows:
            return False  # every value null: no row is at or after since
        if not statistics.has_min_max:
            return True
        smallest, largest = pd.Timestamp(statistics.min), pd.Timestamp(statistics.max)
        # A file whose column is naive (unlike the dataset's schema) is not compared: it is read.
        if largest.tzinfo is None or largest >= since.since:
            return True
        return since.range is not None and (smallest < since.range[0] or largest >= since.range[1])

    known: list[tuple[Any, dict[str, int]]] = []  # (Parquet schema, column positions by path): files share a few

    def columns_of(schema: Any) -> dict[str, int]:
        for seen, at in known:
            if schema.equals(seen):
                return at
        at = {schema.column(i).path: i for i in range(len(schema))}
        known.append((schema, at))
        return at

    def kept(fragment: Any) -> list[tuple[Any, int]]:
        metadata = fragment.metadata
        at = columns_of(metadata.schema)
        start, wanted = 0, []
        for number in range(metadata.num_row_groups):
            group = metadata.row_group(number)

            def statistics(name: str) -> Any:
                return group.column(at[name]).statistics if name in at else None

            # A file without labeled_at holds no label (the dataset reads it as null); a column without
            # statistics may hold anything (writers may skip them per column), and a missing timestamp is
            # read (validation rejects it, naming why).
            if (may_hold(statistics(since.timestamp), group.num_rows, True, nulls_wanted=True)
                    or (since.labeled_at in at and may_hold(statistics(since.labeled_at), group.num_rows, True))):
                wanted.append((number, start))
            start += group.num_rows
        if not wanted:
            return []  # most files of an archive by day: not split into row groups at all
        pieces = fragment.split_by_row_group()
        return [(pieces[number], first) for number, first in wanted]

    # The footers were read with the dataset's columns (see _with_every_column), kept by the fragments: no file
    # is opened here, and threads would only take turns at the Python above.
    found = [p for fragment in dataset.get_fragments() for p in kept(fragment)]
    first_rows = {(piece.path, piece.row_groups[0].id): start for piece, start in found}
    return ds.FileSystemDataset([p for p, _ in found], dataset.schema, dataset.format, dataset.filesystem), first_rows


def _parquet_parts(path: Path, chunksize: int | None, only: _TenantFilter | None = None,
                   since: _SinceFilter | None = None, text: frozenset[str] = frozenset(_TEXT_COLUMNS),
                   ) -> Iterator[tuple[str | pd.Categorical, pd.DataFrame]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = _parquet_dataset_of(path, only, text)
    filtered = since is not None and not chunksize and since.applies(dataset.schema)
    if not chunksize:
        first_rows = None
        if filtered:
            # Files and row groups whose statistics rule out every wanted row are never read; the rest
            # are read whole, so that rows keep their numbers in their file, then filtered.
            dataset, first_rows = _pruned(dataset, since)
        # One threaded scan of the whole dataset; each batch comes tagged with its file, so rows are
        # numbered within their file without opening any file a second time for its row count.
        batches, files, offsets = [], [], []
        for tagged in dataset.scanner().scan_batches():
            batches.append(tagged.record_batch)
            files.append(tagged.fragment.path)
            if first_rows is not None:
                offsets.append(first_rows[(tagged.fragment.path, tagged.fragment.row_groups[0].id)])
        table, undecodable = _binary_as_text(_integers_as_text(pa.Table.from_batches(batches, schema=dataset.schema),
                                                               text))
        counts = np.array([b.num_rows for b in batches], dtype=np.int64)
        pieces = files if first_rows is None else [f"{f}\x1f{o}" for f, o in zip(files, offsets)]
        codes, _ = pd.factorize(pd.Series(pieces, dtype=object), sort=False)
        file_codes, paths = pd.factorize(pd.Series(files, dtype=object), sort=False)
        code_type = np.int8 if len(paths) < 2**7 else np.int16 if len(paths) < 2**15 else np.int32
        names = pd.Categorical.from_codes(np.repeat(file_codes.astype(code_type), counts), categories=list(paths))
        numbers = None
        if len(pieces) > 1 or first_rows is not None:
            # The scan is ordered: a piece's (file's or row group's) batches are consecutive, and its rows
            # start where its first batch does, at the piece's first row in its file.
            batch_starts = np.cumsum(counts) - counts
            first_batch = np.unique(codes, return_index=True)[1]
            starts = np.repeat(batch_starts[first_batch][codes], counts)
            numbers = np.arange(len(table), dtype=np.int64) - starts
            if first_rows is not None:
                numbers += np.repeat(np.asarray(offsets, dtype=np.int64), counts)
        if filtered:
            keep = np.asarray(pc.fill_null(_evaluate(table, since), False), dtype=bool)
            if since.tenant_id in table.column_names and since.message_id in table.column_names:
                keep = _whole_messages(keep, table.column(since.tenant_id), table.column(since.message_id))
            table, names, numbers = table.filter(keep), names[keep], numbers[keep]
        frame = _decoded_keeping_bad_bytes(table.to_pandas(), undecodable)
        if numbers is not None:
            frame.index = pd.Index(numbers)
        yield names, frame
        return
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        keys = ds.get_partition_keys(fragment.partition_expression)
        for batch in fragment.to_batches(batch_size=chunksize):
            batch, undecodable = _binary_as_text(_integers_as_text(batch, text))
            frame = _decoded_keeping_bad_bytes(batch.to_pandas(), undecodable)
            for name, value in keys.items():
                if name not in frame.columns:
                    frame[name] = pd.Series([value] * len(frame), dtype=STRING_DTYPE)
            yield fragment.path, frame


def _evaluate(table: Any, since: _SinceFilter) -> Any:
    """Per row of ``table``, whether it was sent, or labelled, at or after ``since`` (null when unknown), or
    has no timestamp: such a row is never dropped unseen, validation rejects it with its reason."""
    import pyarrow.compute as pc

    tests = []
    for name in (since.timestamp, since.labeled_at):
        if name in table.column_names:
            column, type = table.column(name), table.schema.field(name).type
            tests.append(pc.greater_equal(column, since.at(type)))
            if since.range is not None:  # refused by validation for its range: read, so it is rejected
                low, high = since.range  # (an open end, NaT, bounds nothing)
                if low is not pd.NaT:
                    tests.append(pc.less(column, since.at(type, low)))
                if high is not pd.NaT:
                    tests.append(pc.greater_equal(column, since.at(type, high)))
    tests.append(pc.is_null(table.column(since.timestamp)))
    result = tests[0]
    for test in tests[1:]:
        result = pc.or_kleene(result, test)
    return result


def _whole_messages(keep: np.ndarray, tenant: Any, message_id: Any) -> np.ndarray:
    """``keep``, and every row sharing its tenant and message id with a kept row (white space stripped, as
    validation compares them), so that validation judges those rows together as a whole read does.

    Rows of one message given one row per recipient stay together (sent on both sides of ``since``, or
    labelled on some rows only: those that differ from the first are set aside as copies), and an older copy
    of a kept message is read with it (the later copy is then rejected as a duplicate, as without ``since``).
    Only within the rows read at once (a file, a chunk): a copy in another file is not seen.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if keep.all() or not keep.any():
        return keep

    def text(values: Any) -> Any:
        array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(
            values.astype(STRING_DTYPE).array)
        return pc.utf8_trim_whitespace(pc.cast(array, pa.large_string()))

    def one(values: Any) -> Any:  # a lookup's value set is one array
        return pa.concat_arrays(values.chunks) if isinstance(values, pa.ChunkedArray) else values

    def found(values: Any, among: Any) -> np.ndarray:
        return np.asarray(pc.fill_null(pc.is_in(values, value_set=one(among), skip_nulls=True), False), dtype=bool)

    ids = text(message_id)
    kept = np.flatnonzero(keep)
    # The few kept ids hashed once, every row's id looked up in them; then the tenants of the few found.
    rows = np.flatnonzero(found(ids, ids.take(kept)) & ~keep)
    if not len(rows):
        return keep
    tenants = text(tenant)

    def pairs(at: np.ndarray) -> Any:
        return pc.binary_join_element_wise(tenants.take(at), ids.take(at), pa.scalar("\x1f", pa.large_string()))

    same = found(pairs(rows), pairs(kept))
    keep = keep.copy()
    keep[rows[same]] = True
    return keep


class _TenantFilter:
    """Read only some tenants: skip tenant partitions, then keep matching rows."""

    def __init__(self, tenants: Iterable[str], column: str):
        self.tenants = sorted({str(t) for t in tenants})
        self.column = column

    def may_hold(self, partition_keys: Mapping[str, Any]) -> bool:
        value = partition_keys.get(self.column)
        return value is None or str(value) in self.tenants

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.column not in frame.columns:
            raise ConfigError(f"only_tenants needs a {self.column!r} column; columns present: {list(frame.columns)}")
        keep = id_text(frame[self.column])[0].isin(self.tenants).to_numpy(dtype=bool)
        return frame if keep.all() else frame[keep]


def _file_parts(path: Path, fmt: str, chunksize: int | None, encoding: str, sep: str | None,
                only: _TenantFilter | None = None, since: _SinceFilter | None = None,
                text: frozenset[str] = frozenset(_TEXT_COLUMNS), auth: frozenset[str] = frozenset(AUTH_COLUMNS)):
    """Yield (file name, frame) parts of one file or directory; an empty file yields none (it holds no row).

    ``text`` and ``auth``: the input's names (after the ``columns`` mapping) of the columns read as text, and
    of the authentication results (in CSV, 'None' is one of those, not a missing value)."""
    if fmt == "parquet":
        for name, frame in _parquet_parts(path, chunksize, only, since, text):
            yield name, frame
        return
    if fmt == "jsonl":
        for frame in _jsonl_parts(path, chunksize, encoding):
            yield str(path), frame
        return
    try:
        handed = 0  # rows already handed out (in chunks before the one with a bad byte)
        try:
            reader = _read_csv(path, encoding, chunksize, sep, text, auth)
            for frame in (reader if chunksize else [reader]):
                yield str(path), frame
                handed += len(frame)
        except UnicodeDecodeError:
            # Start over on the whole file, keeping undecodable bytes visible so the rows holding them can
            # be named and set aside; the rows handed out already are not handed out again (they would be
            # repeats of themselves), and the rest goes in chunks as before.
            whole = _read_csv_salvaging(path, encoding, sep, text, auth)
            step = chunksize or max(len(whole) - handed, 1)
            for start in range(handed, max(len(whole), handed + 1), step):
                frame = whole.iloc[start:start + step]
                frame.attrs = {"salvaged_encoding": encoding, "text_columns": text}
                yield str(path), frame
    except pd.errors.EmptyDataError:
        return  # a 0-byte file (no header either): no rows, whole or in chunks
    except pd.errors.ParserError as exc:
        # A line with more fields than the header (a separator inside an unquoted value): which values
        # belong to which column cannot be told, so nothing of the file is guessed at.
        raise ConfigError(f"{path} is not well-formed CSV: {str(exc).strip()}. Quote the values that hold the "
                          "separator, or remove that line, then read the file again") from None


def _jsonl_parts(path: Path, chunksize: int | None, encoding: str) -> Iterator[pd.DataFrame]:
    """A JSON Lines file whole, or ``chunksize`` lines at a time, its rows labelled by record number (blank
    lines are no record, as pandas reads them).

    UTF-8 is read as ``utf-8-sig``: a byte-order mark (Windows tools write one) is not part of the first
    record. A part pandas cannot parse is parsed again line by line: lines that are not JSON objects (an
    export cut off mid-line) are set aside in ``attrs['invalid_json']`` as (file, record number, line
    number, line, why), for validation to reject naming the file and line, and the other lines are read.
    Values are read as written (``dtype=False``): an id written "007" stays text, 7 stays a number.
    """
    import codecs

    from pandas.io.common import get_handle

    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    # Bytes the encoding cannot decode are kept (as in CSV): the records holding them are rejected as
    # invalid_encoding, naming their bytes, where the read failed for the whole file.
    with get_handle(path, "r", encoding=encoding, compression="infer", errors=_BAD_BYTES) as handles:
        lines = _lines_at_newline(handles.handle)
        record = line = 0
        while True:
            part = list(itertools.islice(lines, chunksize or None))
            if not part:
                return
            body = "".join(part)
            undecodable = _BAD_BYTE.search(body) is not None
            # pandas' JSON parser silently drops a \\ud800 escape without its pair ('a\\ud800@x.com' read as
            # 'a@x.com', another sender): a part that writes surrogate escapes at all (an emoji's pair, say) is
            # parsed line by line below, where such a line is set aside.
            escapes = _writes_surrogate_escape(body)
            try:
                if escapes:
                    raise _ReadLineByLine
                with warnings.catch_warnings():
                    # Objects mixed with arrays of other lengths: pandas pads them with a deprecation warning
                    # (an error in later releases); either way the part is read line by line below.
                    warnings.simplefilter("error", DeprecationWarning)
                    warnings.simplefilter("error", FutureWarning)
                    # precise_float: floats read to the bit, as json.loads reads a part read line by line.
                    frame = pd.read_json(io.StringIO(body), lines=True, dtype=False, precise_float=True)
                bad = []
                if not all(isinstance(name, str) for name in frame.columns):
                    raise ValueError("lines of JSON arrays or values, not objects")  # read as numbered columns
            except (_ReadLineByLine, ValueError, TypeError, DeprecationWarning, FutureWarning):  # (TypeError: objects
                # mixed with arrays)
                # (and bytes the encoding could not decode: pandas' strings refuse the surrogates keeping them)
                frame, bad = _jsonl_salvaged(part, str(path), record, line, keep_objects=undecodable)
            frame.index = pd.RangeIndex(record, record + len(frame)) if not bad else frame.index
            records = len(frame) + len(bad)
            if bad:
                frame.attrs["invalid_json"] = bad
            if undecodable:
                frame.attrs["salvaged_encoding"] = encoding
            if records:  # a part of blank lines holds no row
                yield frame
            record += records
            line += len(part)
            if not chunksize:
                return


def _lines_at_newline(pieces: Iterable[str]) -> Iterator[str]:
    r"""The lines of a text handle, a lone ``\r`` ending one only where a record follows (a ``{``).

    The handle splits at every lone ``\r`` (universal newlines): a record whose string holds a raw carriage
    return was cut in two in a chunked read only (``pd.read_json`` splits a whole read at ``\n``), its halves
    rejected as invalid JSON and every later record numbered one higher than in the whole read. A file whose
    lines end in ``\r`` alone (old Mac tools) is still read line by line.

    Examples
    --------
    >>> list(_lines_at_newline(['{"s": "a\r', 'b"}\n', '{"s": 1}\r', ' {"s": 2}']))
    ['{"s": "a\rb"}\n', '{"s": 1}\r', ' {"s": 2}']
    """
    held = ""
    for piece in pieces:
        if held and piece.lstrip().startswith("{"):
            yield held
            held = ""
        if piece.endswith("\r"):
            held += piece
            continue
        yield held + piece if held else piece
        held = ""
    if held:
        yield held


def _jsonl_salvaged(lines: list[str], name: str, first_record: int, first_line: int,
                    keep_objects: bool = False) -> tuple[pd.DataFrame, list[tuple]]:
    """The JSON objects among ``lines`` (of file ``name``) as a frame labelled by record number, and the
    other lines as (file, record number, line number counted from 1, line, why). ``keep_objects``: columns
    of Python objects, for values holding bytes the encoding could not decode (pandas' strings refuse them;
    the encoding's rejects set those rows aside and give the other columns their types back)."""
    import json

    good, labels, bad = [], [], []
    record = first_record
    for number, line in enumerate(lines, start=first_line + 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.strip())
            why = None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"
        except ValueError as error:
            why = str(error)
        lone = _escaped_surrogate(line, value) if why is None else None
        if lone:
            why = (f"the escape {lone} is half of a UTF-16 surrogate pair, without its other half: no character (a "
                   "string cut inside an emoji writes one)")
        if why is None:
            good.append(value)
            labels.append(record)
        else:
            bad.append((name, record, number, line.rstrip("\r\n"), why))
        record += 1
    frame = (pd.DataFrame(good, dtype=object) if keep_objects else pd.DataFrame.from_records(good)) if good \
        else pd.DataFrame()
    frame.index = pd.Index(labels, dtype=np.int64)
    return frame, bad


def _records_as_objects(records: list) -> pd.DataFrame:
    """Records as a frame whose columns holding text UTF-8 cannot hold stay Python objects (pandas' text is
    Arrow's, which refuses it); the other columns are typed as ``from_records`` types them."""
    frame = pd.DataFrame(records, dtype=object)
    for column in frame.columns:
        try:
            frame[column] = frame[column].infer_objects()
        except UnicodeEncodeError:
            pass
    return frame


def read_frame(source: Any, *, format: str | None = None, encoding: str = "utf-8", sep: str | None = None,
               columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read raw mail metadata into one DataFrame, without validating it.

    Parameters
    ----------
    source : DataFrame, path, glob, list of paths, or iterable of mappings
    format : {'parquet', 'csv', 'jsonl'}, optional
        Inferred from the file names when omitted; directories are Parquet datasets.
    encoding : str, default 'utf-8'
    sep : str, optional
        CSV separator (default ``,``, or tab for ``.tsv``).
    columns : mapping, optional
        ``{contract name: your column}``, as :func:`read_messages` takes it: your names of the identifier
        and text columns are read as text (a tenant "NA" or "007" stays itself). The columns keep your names.

    Returns
    -------
    pandas.DataFrame
        With a ``source_file`` column when read from files; indexed by row number within each file.

    Examples
    --------
    >>> read_frame([{"tenant_id": "t", "message_id": "1"}])
      tenant_id message_id
    0         t          1
    """
    parts = list(_parts(source, format=format, encoding=encoding, sep=sep, chunksize=None, text=_text_columns(columns),
                        auth=_auth_columns(columns)))
    return pd.concat(parts) if len(parts) > 1 else parts[0] if parts else pd.DataFrame()


def _parts(source, *, format, encoding, sep, chunksize, only: _TenantFilter | None = None,
           since: _SinceFilter | None = None, options: Mapping[str, Any] | None = None,
           text: frozenset[str] = frozenset(_TEXT_COLUMNS),
           auth: frozenset[str] = frozenset(AUTH_COLUMNS)) -> Iterator[pd.DataFrame]:
    parts = _unfiltered_parts(source, format=format, encoding=encoding, sep=sep, chunksize=chunksize, only=only,
                              since=since, text=text, auth=auth)
    if only is None and since is None:
        yield from parts
        return
    for frame in parts:
        if only is not None:
            frame = only.rows(frame)
        if since is not None:
            # Parquet with zoned timestamps arrives filtered already (kept rows stay); every other input is
            # filtered here, before validation, its most expensive step.
            frame = since.rows(frame, options or {})
        yield frame


def _unfiltered_parts(source, *, format, encoding, sep, chunksize, only, since=None,
                      text: frozenset[str] = frozenset(_TEXT_COLUMNS),
                      auth: frozenset[str] = frozenset(AUTH_COLUMNS)) -> Iterator[pd.DataFrame]:
    if isinstance(source, pd.DataFrame):
        if chunksize:
            for start in range(0, max(len(source), 1), chunksize):
                yield source.iloc[start:start + chunksize]
        else:
            yield source
        return
    if isinstance(source, (str, os.PathLike)) or (isinstance(source, (list, tuple)) and source
                                                   and all(isinstance(s, (str, os.PathLike)) for s in source)):
        for path in list_sources(source):
            fmt = _format_of(path, format)
            offset_by_file: dict[str, int] = {}
            for name, frame in _file_parts(path, fmt, chunksize, encoding, sep, only, since, text, auth):
                if isinstance(name, pd.Categorical):  # a whole dataset: files and row numbers already known
                    frame["source_file"] = name
                    yield frame
                    continue
                if fmt != "jsonl":  # JSON Lines parts come labelled by record, lines set aside counted
                    start = offset_by_file.get(name, 0)
                    offset_by_file[name] = start + len(frame)
                    frame.index = pd.RangeIndex(start, start + len(frame))
                frame["source_file"] = pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), categories=[name])
                yield frame
        return
    if isinstance(source, Mapping):
        raise ConfigError("read_messages takes an iterable of records, not one mapping; wrap it in a list")
    if isinstance(source, Iterable):
        iterator = iter(source)
        start = 0
        while True:
            batch = list(itertools.islice(iterator, chunksize or None))
            if not batch:
                if start == 0 and not chunksize:
                    yield pd.DataFrame()
                return
            try:
                frame = pd.DataFrame.from_records(batch)
            except UnicodeEncodeError:  # text UTF-8 cannot hold (a lone surrogate): validation sets its rows aside
                frame = _records_as_objects(batch)
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame
            if not chunksize:
                return
    raise ConfigError(f"cannot read mail metadata from a {type(source).__name__}; pass a DataFrame, a path, "
                      "a glob, a list of paths or an iterable of mappings")


def _encoding_rejects(frame: pd.DataFrame, strict: bool
                      ) -> tuple[pd.DataFrame, np.ndarray | None, pd.DataFrame | None]:
    """Split off rows holding bytes the declared encoding could not decode: the rows kept, their positions (None:
    all), the rows split off as rejects."""
    encoding = frame.attrs.get("salvaged_encoding")
    if encoding is None:
        return frame, None, None
    text_columns = frame.attrs.get("text_columns", frozenset(_TEXT_COLUMNS))
    bad_rows = np.zeros(len(frame), dtype=bool)
    problems, findings = [], []
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        text = frame[column].astype(object)
        bad = text.map(lambda v: isinstance(v, str) and _BAD_BYTE.search(v) is not None).to_numpy(bool)
        if bad.any():
            shown = [_shown(v) for v in text[bad]]
            fix = (f"the bytes are not valid {encoding}; read again with encoding='<the file's encoding>' "
                   "(for example 'cp1252'), or strict=False to set these rows aside")
            if "salvaged_columns" in frame.attrs:  # (Parquet: no encoding to give)
                fix = ("the bytes of this binary column are not valid UTF-8; rewrite the column as UTF-8 text, or "
                       "strict=False to set these rows aside")
            problems.append(Problem(column, ReasonCode.INVALID_ENCODING, rows=frame.index[bad].tolist(),
                                    values=shown, fix=fix))
            findings.append((np.flatnonzero(bad), column, shown, fix))
            bad_rows |= bad
    if strict and problems:
        raise SchemaError(problems)
    clean = frame.copy()
    for _, column, _, _ in findings:
        # Only the columns holding undecodable bytes, kept object: map() would infer text for a column of
        # other files' lists too (JSON Lines recipients), writing each list as its repr.
        clean[column] = pd.Series([_shown(v) if isinstance(v, str) else v for v in clean[column]],
                                  index=clean.index, dtype=object)
    rejects = [reject_rows(clean, positions, column, ReasonCode.INVALID_ENCODING, values, fix)
               for positions, column, values, fix in findings]
    kept = np.flatnonzero(~bad_rows)
    good = clean.iloc[kept]
    # Columns read as text only because of the salvage: let numbers be numbers again (not identifiers). (Only the
    # columns decoded in a Parquet file: its others have their types.)
    for column in frame.attrs.get("salvaged_columns", good.columns):
        if good[column].dtype == object and column != "source_file" and column not in text_columns:
            converted = pd.to_numeric(good[column], errors="coerce")
            if converted.notna().sum() == good[column].notna().sum() and good[column].notna().any():
                good[column] = converted
            else:
                good[column] = good[column].astype(STRING_DTYPE)
    return good, kept, pd.concat(rejects) if rejects else None


class RowPerRecipientChunksError(ConfigError):
    """Chunked reading was asked of an input with one row per recipient (a message's rows may straddle chunks)."""


class _SeenMessageIds:
    """Remembers the (tenant_id, message_id) of the messages kept from earlier chunks: 8 bytes per message.

    Only kept messages are remembered: a copy whose first copy was rejected (a placeholder date, no valid
    recipient) is the first usable copy, kept as a whole read keeps it.
    """

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)

    @staticmethod
    def _keys(tenant: pd.Series, message_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        # The tenant's length first: no separator character (which a tenant or id may hold: 'a\x1fb' + 'c' and
        # 'a' + 'b\x1fc' were one key) can tell where the tenant ends.
        joined = tenant.str.len().astype("Int64").astype(STRING_DTYPE) + ":" + tenant + message_id
        return stable_keys(joined), joined.notna().to_numpy()

    def seen(self, tenant: pd.Series, message_id: pd.Series) -> np.ndarray:
        """Whether each (tenant, message id), tidy text, is one remembered (missing ones never are)."""
        keys, present = self._keys(tenant, message_id)
        at = np.searchsorted(self.keys, keys[present])
        found = np.zeros(present.sum(), dtype=bool)
        inside = at < len(self.keys)
        found[inside] = self.keys[at[inside]] == keys[present][inside]
        seen = np.zeros(len(keys), dtype=bool)
        seen[present] = found
        return seen

    def repeats(self, frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame | None, SchemaError | None]:
        """The positions of the rows of ``frame`` repeating a message kept from an earlier chunk, their rejects as
        such copies, and the strict error naming them."""
        if "tenant_id" not in frame or "message_id" not in frame or not len(frame) or not len(self.keys):
            return np.zeros(0, dtype=np.int64), None, None
        # The ids as validation reads them (tidied; a float column's integers as integers).
        positions = np.flatnonzero(self.seen(id_text(frame["tenant_id"])[0], id_text(frame["message_id"])[0]))
        if not len(positions):
            return positions, None, None
        fix = "nothing to do if these are copies of one mail filed in several folders (the first copy is kept)"
        values = frame["message_id"].iloc[positions].tolist()
        error = SchemaError([Problem("message_id", ReasonCode.DUPLICATE_MESSAGE_ID,
                                     rows=frame.index[positions].tolist(), values=values, fix=fix,
                                     detail="first seen in an earlier chunk", files=_files_of(frame, positions))])
        return positions, reject_rows(frame, positions, "message_id", ReasonCode.DUPLICATE_MESSAGE_ID, values, fix), \
            error

    def remember(self, kept: pd.DataFrame) -> None:
        """Add the messages of a validated chunk (their ids tidy already, and distinct)."""
        if not len(kept):
            return
        keys, _ = self._keys(*_tidy_ids(kept))
        # Sorted needles make the binary search walk the sorted array in order (cache-friendly), and the new
        # keys go in with one copy, where re-sorting the union every chunk made a long archive quadratic in
        # its number of chunks.
        keys = np.unique(keys)
        self.keys = np.insert(self.keys, np.searchsorted(self.keys, keys), keys)


def _tidy_ids(messages: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The tenant and message ids of validated messages (tidy already) as text."""
    return messages["tenant_id"].astype(STRING_DTYPE), messages["message_id"].astype(STRING_DTYPE)


def copies_across(frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """For each frame of validated messages (ids distinct within it), whether each message is one a frame before
    it holds too (the same tenant and message id)."""
    seen, found = _SeenMessageIds(), []
    for frame in frames:
        found.append(seen.seen(*_tidy_ids(frame)) if len(seen.keys) else np.zeros(len(frame), dtype=bool))
        seen.remember(frame)
    return found


def _files_of(frame: pd.DataFrame, positions: np.ndarray) -> list[str]:
    """The ``source_file`` of the rows at ``positions``, or none when the rows were not read from files."""
    if "source_file" not in frame.columns:
        return []
    return frame["source_file"].iloc[positions].astype(str).tolist()


def _coalesced(parts: Iterable[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """Consecutive small parts joined into chunks of at most ``rows`` rows (as a whole read joins them).

    An archive partitioned by tenant and day holds thousands of small files;
    one validation per file would cost more than the rows. A part that carries
    reading state (``attrs``: a salvaged encoding) stays a chunk of its own.
    """
    held: list[pd.DataFrame] = []
    n = 0
    for frame in parts:
        if held and (frame.attrs or n + len(frame) > rows):
            yield held[0] if len(held) == 1 else pd.concat(held)
            held, n = [], 0
        if frame.attrs:
            yield frame
            continue
        held.append(frame)
        n += len(frame)
    if held:
        yield held[0] if len(held) == 1 else pd.concat(held)


def _validated(frame: pd.DataFrame | None, strict: bool, columns, seen: _SeenMessageIds | None,
               options, offset: int = 0) -> Messages:
    """``frame`` validated, the rows set aside while reading (and repeats of earlier chunks') among its rejects,
    every rejected row numbered by its position in ``frame``, after the ``offset`` rows of the chunks before."""
    extra = []
    # Where the rows still to validate stand in the frame read: rows set aside on the way leave gaps.
    kept = np.arange(len(frame)) if frame is not None else np.zeros(0, dtype=np.int64)
    for set_aside in (_json_rejects, _encoding_rejects):
        if frame is not None:
            frame, rows, rejects = set_aside(frame, strict)
            if rejects is not None:
                # Set aside before the columns are renamed: named as validation's rejects are (the contract's
                # names), so that a tenant's rejects are found under one column.
                extra.append(renumber_rejects(rejects, kept).rename(
                    columns={theirs: ours for ours, theirs in (columns or {}).items()}))
            kept = kept if rows is None else kept[rows]
    if frame is None or (not len(frame) and set(frame.columns) <= {"source_file"}):
        frame = _empty_input(columns)  # no row read (every file empty, or every line set aside)
    frame = apply_column_mapping(frame, columns)
    if seen is not None:
        if "recipient" in frame.columns and not any(c in frame.columns for c in ("recipients", "to", "cc", "bcc")):
            raise RowPerRecipientChunksError("chunked reading needs one row per message; read inputs with one row "
                                             "per recipient ('recipient' column) without chunksize")
        repeated, copies, copied = seen.repeats(frame)
    # Handed over with no name left here: validation then frees the input columns it has
    # consumed before it builds the output (see _whole).
    handed = [frame]
    del frame
    messages = _validate_handed_over(handed, strict=strict, **options)
    if seen is not None:
        if len(repeated):
            # Repeats of an earlier chunk's messages are validated with their chunk, as a whole read validates
            # them: one refused for problems of its own is rejected for those (a whole read calls only usable
            # copies copies), and one kept is the copy (taken out before validation, it was a copy alone).
            if strict:
                raise copied
            rows = messages.rejects["reject_row"][messages.rejects["reject_action"] == "row_rejected"].dropna()
            extra.append(renumber_rejects(copies.iloc[~np.isin(repeated, rows.to_numpy(dtype=np.int64))], kept))
            messages = messages.subset(~seen.seen(*_tidy_ids(messages.frame)))
        seen.remember(messages.frame)
    if len(kept) and not (kept[-1] == len(kept) - 1):  # (rows were set aside: validation numbered the rest)
        messages = messages._renumbered(kept)
    if extra:
        messages = messages.with_rejects(extra)
    return messages._renumbered(offset=offset)


def _empty_input(columns: Mapping[str, str] | None) -> pd.DataFrame:
    """The frame of an input without a single row: the contract's columns (and every mapped one) under the
    input's names, so that it validates to no message, as a chunked read of it yields no chunk."""
    columns = columns or {}
    names = [columns.get(c, c) for c in REQUIRED_COLUMNS] + list(columns.values())
    if not any(c in columns for c in ("recipients", *TYPED_RECIPIENT_COLUMNS, EDGE_RECIPIENT_COLUMN)):
        names.append("recipients")
    return pd.DataFrame({name: pd.Series(dtype=STRING_DTYPE) for name in dict.fromkeys(names)})


def _json_rejects(frame: pd.DataFrame, strict: bool) -> tuple[pd.DataFrame, None, pd.DataFrame | None]:
    """Reject records for the lines of JSON Lines files that are not JSON objects (see :func:`_jsonl_parts`); the
    frame's rows all stay (None: no position left out)."""
    bad = frame.attrs.pop("invalid_json", None)
    if not bad:
        return frame, None, None
    files, records, numbers, lines, whys = (list(v) for v in zip(*bad))
    shown = [line if len(line) <= 200 else line[:200] + "..." for line in lines]
    fix = ("correct or remove the line, or export the file again (an export cut off mid-line ends in a line that "
           "is not a JSON object)")
    if strict:
        raise SchemaError([Problem("record", ReasonCode.INVALID_JSON, rows=records, values=shown, fix=fix,
                                   detail="; ".join(f"line {n}: {w}" for n, w in list(zip(numbers, whys))[:5]),
                                   files=files)])
    lines_read = pd.DataFrame({"source_file": pd.Categorical(files)}, index=pd.Index(records, dtype=np.int64))
    return frame, None, reject_rows(lines_read, np.arange(len(bad)), "record", ReasonCode.INVALID_JSON, shown, fix,
                                    sentences=[f"line {n} of {f}: {w}" for f, n, w in zip(files, numbers, whys)],
                                    numbered=False)  # (no row was read from these lines: none to number)


def read_messages(
    source: Any,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    strict: bool = True,
    chunksize: int | None = None,
    encoding: str = "utf-8",
    sep: str | None = None,
    only_tenants: Iterable[str] | None = None,
    since: Any = None,
    **options: Any,
) -> Messages | Iterator[Messages]:
    """Read and validate mail metadata from any supported source.

    Parameters
    ----------
    source : DataFrame, path, glob, list of paths, or iterable of mappings
        Parquet files or directories (hive partitions become columns), CSV/TSV
        (optionally compressed), JSON Lines, or records such as ``[{...}, ...]``.
    format : {'parquet', 'csv', 'jsonl'}, optional
        Inferred from file names when omitted.
    columns : mapping, optional
        ``{contract name: your column}``.
    strict : bool, default True
        See :func:`validate`.
    chunksize : int, optional
        Return an iterator of :class:`Messages`, one per chunk of at most this many
        input rows, for inputs larger than memory. Message ids repeated across
        chunks are rejected as duplicates (8 bytes per message are remembered).
        Without ``timestamp_unit``, epoch numbers are read in the unit the first
        chunk with numbers shows (per time column); a later number of the other
        magnitude is refused as ``ambiguous_timestamp_unit``, as a whole read
        refuses a column that mixes them.
    encoding : str, default 'utf-8'
        Text encoding of CSV and JSON Lines files. Rows with bytes that are not
        valid in it are refused (``invalid_encoding``), never silently altered.
    sep : str, optional
        CSV separator.
    only_tenants : iterable of str, optional
        Read only these tenants' mail. Parquet datasets partitioned by
        ``tenant_id`` open only those partitions; other inputs are filtered as read.
    since : timestamp-like, optional
        Read at least the rows a refresh from ``since`` uses: those sent at or
        after it, and older ones labelled at or after it (``labeled_at``); naive
        means UTC. For Parquet whose ``timestamp`` (and ``labeled_at``, if
        present) columns, after the ``columns`` mapping, are zoned timestamps,
        exactly those rows are read: files and row groups whose statistics rule
        them all out are never read, the others are filtered with pyarrow, and
        rows keep their numbers in their file (rows without a timestamp are
        read too, and rejected with their reason). Other inputs (CSV, JSON Lines, records,
        DataFrames, text, numeric or naive timestamps, ``chunksize``) are read
        whole and filtered before validation, their times parsed as validation
        parses them (``timezone``, ``timestamp_unit``, ...); rows whose
        ``timestamp`` or ``labeled_at`` validation would refuse are kept, so it
        rejects them with their reason. Every row sharing its tenant and message
        id with a kept row in the same file (or chunk) is kept with it, so that
        validation judges a message's rows together as a whole read does (one
        row per recipient that disagree, an older copy before a later one, which
        is then the duplicate). Validation sees only the rows kept: rejects are
        counted among them, a copy of an older message in another file is not
        seen as a duplicate, and how a column's times are written (text or
        numbers, the epoch unit) is judged on the rows kept, so an archive that
        writes them one way in some files and another way in others needs a
        whole read to be judged as one.
    **options
        Passed to :func:`validate` (``tenants``, ``timezone``, ``timestamp_unit``, ...).

    Returns
    -------
    Messages, or an iterator of Messages when ``chunksize`` is given.

    Examples
    --------
    >>> records = [{"tenant_id": "acme", "message_id": "m1", "timestamp": "2024-05-02T09:00:00Z",
    ...             "sender": "ann@acme.com", "recipients": ["bob@vendor.com"], "direction": "outbound"}]
    >>> read_messages(records)
    Messages(1 message, 1 edge, 1 tenant, 0 rejects; 2024-05-02 09:00 .. 2024-05-02 09:00 UTC)
    >>> [len(m) for m in read_messages(records * 3, chunksize=2, strict=False)]
    [1, 0]
    >>> len(read_messages(records, only_tenants=["other"]))
    0

    Reading only what a refresh from 2024-05-02 uses, from Parquet:

    >>> import tempfile
    >>> frame = pd.DataFrame(records * 2).assign(message_id=["m1", "m2"],
    ...     timestamp=pd.to_datetime(["2024-05-01T09:00Z", "2024-05-02T09:00Z"]))
    >>> path = Path(tempfile.mkdtemp()) / "mail.parquet"
    >>> frame.to_parquet(path)
    >>> read_messages(path, since="2024-05-02").frame["message_id"].tolist()
    ['m2']

    Any other input is filtered before validation, its naive times read in ``timezone`` (09:00 in
    Paris is 07:00 UTC):

    >>> naive = frame.assign(timestamp=["2024-05-01 09:00", "2024-05-02 09:00"])
    >>> read_messages(naive, since="2024-05-02T06:00Z", timezone="Europe/Paris").frame["message_id"].tolist()
    ['m2']
    """
    unknown = [k for k in options if k not in ("tenants", "timezone", "timestamp_unit", "timestamp_origin",
                                               "time_range", "fold_plus_addresses")]
    if unknown:
        raise ConfigError(f"read_messages got an unexpected option {unknown[0]!r}")
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise ConfigError(f"'chunksize' must be a positive integer (got {chunksize!r})")
    if options.get("timezone") is not None:
        _check_zone(options["timezone"])  # before any row is read in it (the since filter reads some first)
    only = None
    if only_tenants is not None:
        if isinstance(only_tenants, str):
            raise ConfigError(f"'only_tenants' must be a list of tenant ids (got the string {only_tenants!r})")
        only = _TenantFilter(only_tenants, (columns or {}).get("tenant_id", "tenant_id"))
    parts = _parts(source, format=format, encoding=encoding, sep=sep, chunksize=chunksize, only=only,
                   since=_SinceFilter(since, columns, options.get("time_range", DEFAULT_TIME_RANGE))
                   if since is not None else None, options=options, text=_text_columns(columns),
                   auth=_auth_columns(columns))
    if chunksize:
        return _validated_chunks(_coalesced(parts, chunksize), strict, columns, options)
    return _validated(_whole(parts), strict, columns, None, options)


def _whole(parts: Iterator[pd.DataFrame]) -> pd.DataFrame | None:
    # The frame read is returned, never named by the caller: validation is then the only
    # holder of the input, and frees what it has consumed before building the output.
    frames = list(parts)
    if len(frames) < 2:
        return frames[0] if frames else None
    # pandas keeps attrs through concat only when every part has the same: the lines and bytes set aside
    # while reading some files must reach validation, which rejects them.
    attrs: dict[str, Any] = {}
    for frame in frames:
        for name, value in frame.attrs.items():
            attrs[name] = attrs.get(name, []) + value if name == "invalid_json" else attrs.get(name, value)
    whole = pd.concat(frames)
    whole.attrs = attrs
    return whole


def _validated_chunks(parts: Iterator[pd.DataFrame], strict: bool, columns, options) -> Iterator[Messages]:
    seen = _SeenMessageIds()
    # The epoch unit of each time column is judged once, on the first chunk whose numbers say it, and later
    # chunks are read in it (each judged on its own, a file could be read half in seconds, half in milliseconds).
    options = {**options, "epoch_units": {}}
    rows_before = 0  # rejected rows are numbered in the whole input, as a whole read numbers them
    inferred: set[str] = set()  # tenants whose own domains a chunk inferred: inferred in every later chunk too
    for frame in parts:
        handed = [frame]
        rows = len(frame)
        del frame  # as in _whole: validation holds the only reference to the chunk
        messages = _validated(handed.pop(), strict, columns, seen, options, offset=rows_before)
        rows_before += rows
        # Own domains inferred from a tenant's first chunk serve its later chunks (one guess, one warning) as a
        # configuration would, but stay inferred (the look-alike signals compare with configured ones only).
        inferred |= messages.inferred_own
        messages._inferred = frozenset(inferred & set(messages.own_domains))
        options["tenants"] = with_own_domains(options.get("tenants"), messages.own_domains)
        yield messages
