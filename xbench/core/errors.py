"""User-facing errors.

An :class:`XBenchError` is bad input (a malformed task file, an unknown name, NaN
attributions, an empty rationale). The CLI prints its message as one line, with no
traceback, and exits with code 2.
"""


class XBenchError(Exception):
    """Bad input, reported to the user as one line (exit code 2 at the CLI)."""
