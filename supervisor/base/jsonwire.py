"""JSON for the control protocol and the client CLIs, without importing the json package.

`import json` costs a fresh client more than its own work does: json's decoder
imports re, and re imports enum. The C accelerator `_json` that json.dumps and
json.loads use underneath needs neither, so this module drives it directly,
with json's own defaults: the same text out, the same values in, the same
errors (a JSONDecodeError is a ValueError; too deep a nesting raises
RecursionError; an integer beyond Python's digit limit raises ValueError).
pys6 runs on CPython, which always has `_json`.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
_JSON_WHITESPACE = " \t\n\r"


class _ScannerContext:
    """The attributes _json.make_scanner reads: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _encoder(sort_keys: bool, item_separator: str, key_separator: str, ensure_ascii: bool) -> _json.make_encoder:
    as_string = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    return _json.make_encoder({}, _not_serializable, as_string, None, key_separator, item_separator,
                              sort_keys, False, True)


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: object, *, compact: bool = False, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """json.dumps(value, sort_keys=..., ensure_ascii=...), with separators (",", ":") when compact."""
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value) if ensure_ascii else _json.encode_basestring(value))
    item, key = (",", ":") if compact else (", ", ": ")
    # A new encoder each time: its circular-reference markers must start empty.
    return "".join(_encoder(sort_keys, item, key, ensure_ascii)(value, 0))


def loads(data: bytes | str) -> object:
    """json.loads for text, or for bytes in UTF-8 (the protocol's encoding: no BOM, no UTF-16 or -32 guessing);
    raises ValueError (UnicodeDecodeError, JSONDecodeError) or RecursionError."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    context: Any = _ScannerContext  # typeshed types the context as a scanner; _json reads only its attributes
    scan = _json.make_scanner(context)
    try:
        value, end = scan(text, start)
    except StopIteration as stop:
        raise _decode_error("Expecting value", text, stop.value) from None
    rest = len(text) - len(text.rstrip(_JSON_WHITESPACE))
    if end != len(text) - rest:
        raise _decode_error("Extra data", text, end)
    return value


def _decode_error(message: str, text: str, position: int) -> ValueError:
    """json's own error type; importing it is paid only when the input is not JSON."""
    from json import JSONDecodeError

    return JSONDecodeError(message, text, position)
