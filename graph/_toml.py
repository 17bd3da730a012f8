"""Configuration files in TOML, read with errors that name the file and say what is wrong."""

from __future__ import annotations

import tomllib
from os import PathLike
from typing import Any

from ._errors import ConfigError

__all__ = ["read_toml"]


def read_toml(path: str | PathLike, what: str) -> dict[str, Any]:
    """The TOML document at ``path``; a missing, unreadable or malformed file raises :class:`ConfigError`.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the file holds, for the message ("the baseline configuration").

    Returns
    -------
    dict

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "bad.toml"
    >>> _ = p.write_text("windows = [7d]")
    >>> read_toml(p, "the baseline configuration")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: the baseline configuration file '...bad.toml' is not valid TOML: Unclosed array (at line 1, column 13)
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} file {str(path)!r} is a directory; give the path of a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{what} file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} file {str(path)!r} is not valid TOML: {exc}") from None
