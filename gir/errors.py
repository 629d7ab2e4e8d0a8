"""The exceptions gir raises. Every one derives from :class:`GirError`."""

from __future__ import annotations

import os
import sys
import warnings

#: gir's package folder: warnings are attributed to the first frame outside it.
_ROOT = os.path.dirname(os.path.abspath(__file__)) + os.sep


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


def warn(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """Issue a warning attributed to the first caller outside gir (its file and line, as users expect)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_ROOT):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
