"""User-facing errors.

An :class:`XBenchError` is bad input (a malformed task file, an unknown name, NaN
attributions, an empty rationale). The CLI prints its message as one line, with no
traceback, and exits with code 2.
"""
from __future__ import annotations

_CONTROL = {c: f"\\x{c:02x}" for c in range(32)} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
                                                      0x7f: "\\x7f", 0x85: "\\x85", 0x2028: "\\u2028",
                                                      0x2029: "\\u2029"}


class XBenchError(Exception):
    """Bad input, reported to the user as one line (exit code 2 at the CLI).

    The message is kept on one line whatever it quotes: line breaks and other control characters
    (say, in a field name taken from the user's file) are written as escapes such as ``\\n``."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(str(message).translate(_CONTROL), *args)
