"""Targets, compile caches, ``gir.compile`` and the Executable."""

from gir.codegen.backend import CacheWarning
from gir.runtime.cache import cache_info, clear_cache
from gir.runtime.compile import compile
from gir.runtime.executable import Executable
from gir.runtime.target import targets

__all__ = ["CacheWarning", "Executable", "cache_info", "clear_cache", "compile", "targets"]
