"""User settings: one small TOML file, so that the data root is set once.

The file is ``$NAE_CONFIG_FILE`` if set, else ``$XDG_CONFIG_HOME/nae/config.toml``, else
``~/.config/nae/config.toml``.  It is optional; today it knows one key::

    data_root = "/path/to/datasets"   # where `python -m nae data` and load_dataset look

A relative ``data_root`` is taken relative to the file's folder, and ``~`` is expanded.
The environment variable ``$NAE_DATA`` wins over the file (``make`` sets it), so the
order is: ``$NAE_DATA``, then ``data_root`` in this file, then ``datasets/`` in the
repository.  Create the file with::

    mkdir -p ~/.config/nae
    echo 'data_root = "/path/to/datasets"' > ~/.config/nae/config.toml
"""
from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Optional

from .errors import ConfigError

__all__ = ["KEYS", "config_file", "read_settings", "setting_path"]

#: the keys the file may hold, with what they mean
KEYS = {"data_root": "folder of the data sets (overridden by $NAE_DATA)"}


def config_file() -> Path:
    """Where the user settings are read from (the file need not exist)."""
    env = os.environ.get("NAE_CONFIG_FILE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "nae" / "config.toml"


def read_settings(path=None) -> dict:
    """The settings in ``path`` (default :func:`config_file`); ``{}`` when there is no file.

    Raises :class:`~nae.errors.ConfigError` (one line) for a file that is not TOML, an
    unknown key or a value that is not a string.
    """
    path = Path(path) if path is not None else config_file()
    if not path.is_file():
        return {}
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a valid TOML file ({e})") from e
    for key, value in settings.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{path}: unknown key {key!r}{hint}")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {key} must be a non-empty string (a path), got {value!r}")
    return settings


def setting_path(key: str) -> Optional[tuple[Path, Path]]:
    """``(path, file)``: the path setting ``key`` of the user file and that file, or None.

    A relative path is resolved against the file's folder.
    """
    file = config_file()
    value = read_settings(file).get(key)
    if value is None:
        return None
    p = Path(value).expanduser()
    return (p if p.is_absolute() else file.parent / p), file
