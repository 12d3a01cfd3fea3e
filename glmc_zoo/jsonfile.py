"""Reading the JSON files glmc-zoo meets (config.json, split.json, the run logs, `.onnx` metadata) within bounds:
a file decides neither how much memory nor how deep a recursion its parsing takes, and a damaged one is one
error naming the file, never a traceback. Callers then check the fields they use (the registry, `RunDir`)."""

from __future__ import annotations

import json
from pathlib import Path

#: The largest JSON file read (a config.json with 8,142 iNaturalist class names is about 0.3 MB).
MAX_JSON_BYTES = 64 * 2**20


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, where: str, finite: bool = True):
    """`text` parsed; `ValueError` naming `where` when it is not JSON (with `finite`, NaN and Infinity, which
    Python writes but JSON does not have, are refused too), too large or nested too deep."""
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f"{where}: {len(text):,} characters, over the {MAX_JSON_BYTES // 2**20} MiB a JSON file here "
                         f"may hold")
    try:
        return json.loads(text, parse_constant=_no_constant if finite else None)
    except RecursionError:
        raise ValueError(f"{where}: nested too deep to be a glmc-zoo file") from None
    except ValueError as e:  # json.JSONDecodeError, or NaN / Infinity
        raise ValueError(f"{where}: not valid JSON ({e})") from None


def read_json(path: str | Path):
    """The JSON value in `path` (`parse_json`'s bounds); `ValueError` naming the file, `OSError` as the OS said."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{path}: {size:,} bytes, over the {MAX_JSON_BYTES // 2**20} MiB a JSON file here may hold")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason})") from None
    return parse_json(text, str(path))
