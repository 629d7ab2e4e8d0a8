"""The exceptions gir raises. Every one derives from :class:`GirError`."""

from __future__ import annotations


class GirError(Exception):
    """Base class of every error gir raises on bad input."""


class ParseError(GirError):
    """Malformed IR text; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, line: int, column: int, source_line: str = ""):
        self.message = message
        self.line = line
        self.column = column
        self.source_line = source_line
        caret = f"\n  {source_line}\n  {' ' * (column - 1)}^" if source_line else ""
        super().__init__(f"{line}:{column}: {message}{caret}")


class VerifyError(GirError):
    """A graph that breaks an IR invariant (types, arity, order, dangling values)."""


class InputError(GirError):
    """Wrong, missing or inconsistent inputs to an executable."""


class TargetError(GirError):
    """An unknown target, or one that is not available on this machine."""
