"""Reading pickles that users downloaded (StackGAN's `filenames.pickle`, `class_info.pickle`) without running them.

A pickle can name any importable callable and call it while loading (`os.system` in `__reduce__`), so the
standard unpickler must never see a file from the internet. This one refuses every global: only the
built-in opcodes for lists, tuples, dicts, sets, strings, bytes, numbers, booleans and None get through.
StackGAN's files were written by Python 2 (protocol 2, `str` = bytes): `encoding="latin1"` turns those into
text, and any bytes that remain are decoded the same way.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from s2ikit.utils.errors import UserError


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain data is allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: only plain data is allowed")


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_text(v) for v in value)
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return value


def load_data_pickle(path: str | Path) -> Any:
    """The plain data in `path`; a pickle that names any class or function is a UserError, never executed."""
    try:
        with open(path, "rb") as f:
            return _text(_DataOnlyUnpickler(f, encoding="latin1").load())
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        raise UserError(f"{path}: not a plain-data pickle, not loaded ({e})") from None


def load_name_list(path: str | Path) -> list[str]:
    """A pickled list (or tuple) of strings, like StackGAN's `filenames.pickle`."""
    names = load_data_pickle(path)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{path}: expected a pickled list of file names, found {type(names).__name__}")
    return list(names)
