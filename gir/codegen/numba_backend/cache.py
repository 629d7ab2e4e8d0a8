"""The on-disk module cache: generated source as real files, so Numba's ``cache=True`` works.

Numba caches compiled code next to the source file of a function (in its
``__pycache__``), keyed by the file's path and modification time. So each
generated kernel is written once to ``<cache dir>/gir_<key>.py`` and imported
from there. The key hashes the module source (which spells out the graph
structure and the options), the Numba version, the LLVM options gir sets
(:data:`LLVM_OPTIONS`) and the source of the helper modules the kernel calls
(Numba's cache would not notice those change). A new
process that compiles the same graph with the same options writes nothing,
imports the same file and loads the machine code from Numba's cache.

The folder is ``$GIR_CACHE_DIR/numba`` if ``GIR_CACHE_DIR`` is set, else
``~/.cache/gir/numba`` (:func:`gir.codegen.backend.disk_cache_dir`).

Recovery: every file gir writes goes to a temporary file in the same folder
first and is moved into place (``os.replace``), so a reader sees the old file
or the whole new one. A module file whose bytes differ from the source its
name hashes (truncated, zeroed, garbled) is rewritten, and Numba's files for
it are deleted. Numba's own index and data files are read when a kernel is
first called: each dispatcher of a kernel module and of the helper modules
gets a guarded cache whose failed load (an unreadable, truncated or garbled
file) deletes that function's files and compiles afresh. Either way the
entry is evicted with one :class:`gir.runtime.CacheWarning`, never an exception.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import llvmlite.binding
import numba
from numba.core.caching import Cache
from numba.core.dispatcher import Dispatcher

from gir.codegen.backend import CacheWarning, disk_cache_dir

_HELPER_FILES = ("support.py", "fastexp.py", "faddeeva.py")

#: LLVM options set once per process, before any kernel compiles. Numba cannot mark array
#: arguments noalias, so the loop vectorizer guards a loop with runtime overlap checks between
#: the arrays it stores and reads; past 128 checks (a nest storing a dozen arrays, as derivative
#: kernels do) it gives up and the loop runs scalar, 2-3x slower. The checks run once per inner loop.
#: ``GIR_LLVM_OPTIONS=0`` leaves LLVM's defaults alone (for the whole process).
LLVM_OPTIONS = (
    () if os.environ.get("GIR_LLVM_OPTIONS") == "0" else ("-vectorize-memory-check-threshold=4096",)
)
for _option in LLVM_OPTIONS:
    llvmlite.binding.set_option("gir", _option)


_LOCK = threading.Lock()
#: (folder, module stem) of the entries evicted in this process: one warning each.
_EVICTED: set[tuple[str, str]] = set()


@functools.cache
def _helpers_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256((numba.__version__ + " ".join(LLVM_OPTIONS)).encode())
    for name in _HELPER_FILES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def module_key(source: str) -> str:
    """The cache key of a generated module."""
    return hashlib.sha256((_helpers_digest() + source).encode()).hexdigest()[:32]


def _evict(folder: Path, prefix: str, stem: str, why: str) -> None:
    """Delete the files in ``folder`` whose names start with ``prefix``; warn once per entry."""
    for path in folder.glob(f"{prefix}*") if folder.is_dir() else ():
        try:
            path.unlink()
        except OSError:  # gone already (another process), or not ours to delete
            pass
    with _LOCK:
        first = (str(folder), stem) not in _EVICTED
        _EVICTED.add((str(folder), stem))
    if first:
        warnings.warn(
            f"gir: the Numba disk cache entry {stem!r} in {folder} was unreadable ({why}); "
            "it was deleted and is being rebuilt",
            CacheWarning,
            stacklevel=2,
        )


def _write(folder: Path, key: str, source: str) -> Path:
    """``folder/gir_<key>.py`` holding ``source``, written once and atomically.

    An existing file with other bytes is a damaged entry: it is rewritten, and
    the Numba files compiled from it are evicted.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gir_{key}.py"
    data = source.encode()
    try:
        damage = None if path.read_bytes() == data else "the module file does not hold its source"
    except FileNotFoundError:
        damage = ""
    except OSError as e:  # unreadable (no permission, a folder in its place): replaced below
        damage = f"{type(e).__name__}: {e}"
    if damage is not None:
        if damage:
            _evict(folder / "__pycache__", f"gir_{key}.", path.stem, damage)
        # a concurrent reader sees the old file or the whole new one, never a part
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".gir_{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def _guard(dispatcher: Dispatcher) -> None:
    """Make a failed load from Numba's cache evict the function's files and compile instead."""
    cache = getattr(dispatcher, "_cache", None)
    if not isinstance(cache, Cache) or getattr(cache, "_gir_guarded", False):
        return
    load, base = cache.load_overload, getattr(cache._impl, "filename_base", None)
    stem = Path(dispatcher.py_func.__code__.co_filename).stem

    def load_overload(sig: Any, target_context: Any) -> Any:
        try:
            return load(sig, target_context)
        except Exception as e:  # a damaged index or data file: whatever unpickling or rebuilding raises
            prefix = f"{base}." if base else f"{stem}."
            _evict(Path(cache.cache_path), prefix, stem, f"{type(e).__name__}: {e}")
            return None  # Numba compiles, then saves a fresh entry

    cache.load_overload = load_overload
    cache._gir_guarded = True


def guard_module(module: ModuleType) -> None:
    """Guard the cache of every Numba dispatcher defined in or imported into ``module``."""
    for value in list(vars(module).values()):
        if isinstance(value, Dispatcher):
            _guard(value)


@functools.cache
def _guard_helpers() -> None:
    for name in _HELPER_FILES:
        guard_module(importlib.import_module(f"{__package__}.{name.removesuffix('.py')}"))


def load_module(source: str) -> ModuleType:
    """Write ``source`` to the cache folder (once) and import it as a module."""
    key = module_key(source)
    name = f"gir_numba_{key}"
    if name in sys.modules:
        return sys.modules[name]
    _guard_helpers()
    try:
        path = _write(disk_cache_dir(), key, source)
    except OSError:  # an unwritable cache folder: fall back to the temporary folder
        path = _write(disk_cache_dir(fallback=True), key, source)
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        # compiled from the source in hand, not read back: no bytecode cache, no second read
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    guard_module(module)
    return module
